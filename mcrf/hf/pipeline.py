"""The ``"mcrf-token-classification"`` pipeline: entities from the masked Viterbi path, scored by CRF marginals.

``pipeline("mcrf-token-classification", model=folder)`` (after ``import mcrf.hf``) splits each text into
words exactly as ``mcrf predict`` does (``mcrf.data.text.tokenize_line``), runs the model over the first
sub-word of each word and returns, like ``pipeline("token-classification", aggregation_strategy="simple")``,
one dict per entity: ``entity_group``, ``score``, ``word``, ``start``, ``end`` (character offsets into the
text). The spans are those ``mcrf predict`` reports: the strict spans of the decoded tags, made legal by
``config.postprocess`` where the path breaks the scheme (mode ``"crf"`` only); the score is the smallest CRF
marginal of the span's tags, ``mcrf predict``'s span confidence.

A text longer than the model's window is read in overlapping windows (``MaskedCRFForTokenClassification.
aligner``), each word from one of them, as ``mcrf predict`` reads it: no word is cut off. With
``batch_size=N`` the texts of a batch go through the backbone together (all their windows in one pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Dict, List, Tuple

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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        model = kwargs.get("model", args[0] if args else None)
        path = getattr(model, "name_or_path", None)
        if kwargs.get("tokenizer") is None and isinstance(path, str) and path:
            # transformers < 4.54's pipeline() loads a tokenizer only for a config type it knows, which
            # MaskedCRFConfig is not; the model's folder holds it (later versions pass it in here)
            from transformers import AutoTokenizer

            kwargs["tokenizer"] = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        super().__init__(*args, **kwargs)
        self._windows: Any = None  # built at the first text: it reads the tokenizer's special tokens

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """Entities of a text, or a list of them for a list (or tuple, or ``dataset["text"]`` column) of texts;
        an iterator of them for a generator or a ``KeyDataset``."""
        if isinstance(inputs, Sequence) and not isinstance(inputs, (str, list)):
            inputs = list(inputs)  # transformers runs a list as a batch, any other sequence as one input
        if isinstance(inputs, list) and not inputs:
            return []  # (transformers' own __call__ reads inputs[0])
        return super().__call__(inputs, *args, **kwargs)

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

        if not isinstance(text, str):
            raise ConfigError(f"expected a string of text, got {type(text).__name__}")
        # No tensors: a text has any number of windows, which transformers' collate (one row per text) would
        # cut; a batch of texts is a list of these lists, windowed together in _forward.
        return {"sentences": [tokenize_line(text)]}

    def _forward(self, inputs: Dict[str, Any]) -> Dict[str, Any]:
        batch = inputs["sentences"]
        sentences = [s for group in batch for s in group] if batch and isinstance(batch[0], list) else batch
        words = [s for s in sentences if s.tokens]  # an empty text has no entity and needs no pass
        found = iter(zip(*self._tag(words)) if words else ())
        items = []
        for sentence in sentences:
            path, marginals = next(found) if sentence.tokens else ([], [])
            items.append({"sentence": sentence, "path": path, "marginals": marginals})
        return {"items": items}

    def _tag(self, sentences: List[Any]) -> Tuple[List[List[int]], List[List[List[float]]]]:
        """The masked Viterbi path and the CRF marginals (one row of K per word) of non-empty sentences,
        read in windows."""
        if self._windows is None:
            self._windows = self.model.aligner(self.tokenizer)
        windows = self._windows([list(s.tokens) for s in sentences])
        windows = {name: value.to(self.device) for name, value in windows.items()}
        mask = windows["word_mask"]  # shape: (B, W)
        emissions = self.model.word_scores(windows)  # shape: (B, W, K)
        paths, _ = self.model.crf.viterbi(emissions, mask)  # shape: (B, 1, W)
        marginals = self.model.crf.marginals(emissions, mask)  # shape: (B, W, K)
        lengths = [len(s.tokens) for s in sentences]
        path_rows, marginal_rows = paths[:, 0].tolist(), marginals.tolist()  # one copy to the host per batch
        return ([row[:n] for row, n in zip(path_rows, lengths)], [row[:n] for row, n in zip(marginal_rows, lengths)])

    def postprocess(self, outputs: Dict[str, Any], aggregation_strategy: str = "simple") -> List[Dict[str, Any]]:
        from mcrf.models.decoding import assemble

        item = outputs["items"]  # one text's dict; a list of one when the batch had one text (not split up)
        if isinstance(item, list):
            (item,) = item
        sentence, path, marginals = item["sentence"], item["path"], item["marginals"]
        config = self.model.config
        labels = config.labels
        index = {label: i for i, label in enumerate(labels)}
        # mcrf predict's own post-processing: a path that breaks the scheme (mode "crf") made legal by the rule
        decoded = assemble([labels[i] for i in path], [row[i] for row, i in zip(marginals, path)], config.scheme,
                           config.postprocess, lambda t, tag: marginals[t][index[tag]])
        offsets, text, confidence = sentence.offsets, sentence.text, decoded.token_confidence
        if aggregation_strategy == "none":
            return [{"entity": tag, "score": confidence[i], "index": i, "word": sentence.tokens[i],
                     "start": offsets[i][0], "end": offsets[i][1]} for i, tag in enumerate(decoded.tags)]
        entities = []
        for label, first, last, score in decoded.spans:
            start, end = offsets[first][0], offsets[last - 1][1]
            entities.append({"entity_group": label, "score": score, "word": text[start:end], "start": start,
                             "end": end})
        return entities
