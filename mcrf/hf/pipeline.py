"""The ``"mcrf-token-classification"`` pipeline: entities from the masked Viterbi path, scored by CRF marginals.

``pipeline("mcrf-token-classification", model=folder)`` (after ``import mcrf.hf``) splits each text into
words exactly as ``mcrf predict`` does (``mcrf.data.text.tokenize_line``), runs the model over the first
sub-word of each word (the ``word_mask`` input) and returns, like ``pipeline("token-classification",
aggregation_strategy="simple")``, one dict per entity: ``entity_group``, ``score``, ``word``, ``start``,
``end`` (character offsets into the text). The spans are the strict spans of the decoded tags; the score
is the smallest CRF marginal of the span's tags, the span confidence ``mcrf predict`` reports.

Words past the tokenizer's length limit are cut off (they get no entity); ``mcrf predict`` reads long
sentences in overlapping windows instead.
"""

from __future__ import annotations

from typing import Any, Dict, List

from transformers import Pipeline

from mcrf.errors import ConfigError

__all__ = ["TASK", "MaskedCRFTokenClassificationPipeline"]

TASK = "mcrf-token-classification"
_STRATEGIES = ("simple", "none")


class MaskedCRFTokenClassificationPipeline(Pipeline):
    """Named-entity pipeline of ``MaskedCRFForTokenClassification`` (see the module docstring).

    Call it with a string or a list of strings; ``aggregation_strategy="none"`` returns one dict per word
    (``entity``: its tag, ``score``: the tag's marginal, ``word``, ``start``, ``end``, ``index``) instead of
    entities.
    """

    def _sanitize_parameters(self, aggregation_strategy: Any = None, **kwargs: Any):
        if kwargs:
            raise ConfigError(f"unknown option(s) {sorted(kwargs)} of the {TASK} pipeline; it takes "
                              "aggregation_strategy")
        postprocess: Dict[str, Any] = {}
        if aggregation_strategy is not None:
            name = str(getattr(aggregation_strategy, "value", aggregation_strategy)).lower()
            if name not in _STRATEGIES:
                raise ConfigError(f"expected aggregation_strategy in {_STRATEGIES} (entities from the CRF path, or "
                                  f"one entry per word), got {aggregation_strategy!r}")
            postprocess["aggregation_strategy"] = name
        return {}, {}, postprocess

    def preprocess(self, text: str) -> Dict[str, Any]:
        from mcrf.data.text import tokenize_line
        from mcrf.hf.model import word_mask

        if not isinstance(text, str):
            raise ConfigError(f"expected a string of text, got {type(text).__name__}")
        sentence = tokenize_line(text)
        if not sentence.tokens:
            return {"sentence": sentence}
        encoding = self.tokenizer(list(sentence.tokens), is_split_into_words=True, truncation=True,
                                  return_tensors="pt")
        inputs = {name: encoding[name] for name in self.tokenizer.model_input_names if name in encoding}
        return {**inputs, "word_mask": word_mask(encoding), "sentence": sentence}

    def _forward(self, inputs: Dict[str, Any]) -> Dict[str, Any]:
        sentence = inputs.pop("sentence")
        if "word_mask" not in inputs:
            return {"sentence": sentence}
        mask = inputs["word_mask"][0]  # shape: (S,)
        output = self.model(**inputs, output_marginals=True)
        path = output.logits[0][mask].argmax(dim=-1)  # shape: (n,)
        marginals = output.marginals[0][mask]  # shape: (n, K)
        return {"sentence": sentence, "path": path, "confidence": marginals.gather(1, path.unsqueeze(1))[:, 0]}

    def postprocess(self, outputs: Dict[str, Any], aggregation_strategy: str = "simple") -> List[Dict[str, Any]]:
        from mcrf.crf.spans import get_spans

        sentence = outputs["sentence"]
        if "path" not in outputs:
            return []
        labels = self.model.config.id2label
        tags = [labels[int(i)] for i in outputs["path"].tolist()]
        confidence = [float(c) for c in outputs["confidence"].tolist()]
        offsets, text = sentence.offsets, sentence.text
        if aggregation_strategy == "none":
            return [{"entity": tag, "score": confidence[i], "index": i, "word": sentence.tokens[i],
                     "start": offsets[i][0], "end": offsets[i][1]} for i, tag in enumerate(tags)]
        entities = []
        for span in get_spans(tags, self.model.config.scheme):
            start, end = offsets[span.start][0], offsets[span.end - 1][1]
            entities.append({"entity_group": span.label, "score": min(confidence[span.start:span.end]),
                             "word": text[start:end], "start": start, "end": end})
        return entities
