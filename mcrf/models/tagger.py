"""``Tagger``: an encoder's word vectors -> dropout -> linear tag scores -> (masked) CRF or softmax."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mcrf.crf.layer import MaskedCRF
from mcrf.data.batching import BATCH_WORDS, budget_batches
from mcrf.data.types import Sentence
from mcrf.errors import ConfigError, DataError
from mcrf.models.config import TaggerConfig
from mcrf.models.decoding import Decoded, decode_rows, host_table
from mcrf.models.encoders import Encoder, encoder_class

__all__ = ["Tagger", "Collator"]

IGNORE = -100


class Collator:
    """Picklable ``collate_fn``: sentences -> batch dict of CPU tensors.

    Always present: ``tags`` (B, W) long (label index; ``-100`` at padding and for sentences
    without tags) and ``word_mask`` (B, W) bool. The encoder-specific keys come from
    ``featurize`` (the encoder's ``featurizer()``).

    Args:
        featurize: maps the words of each sentence to the encoder's input tensors.
        labels: the tagger's label list.
        with_tags: read gold tags (``False`` for prediction: tags are left at -100).
    """

    def __init__(self, featurize: Callable[[Sequence[Sequence[str]]], Dict[str, Tensor]],
                 labels: Sequence[str], with_tags: bool = True) -> None:
        self.featurize = featurize
        self.labels = list(labels)
        self.label_index = {label: i for i, label in enumerate(self.labels)}
        self.with_tags = with_tags

    def __call__(self, sentences: Sequence[Sentence]) -> Dict[str, Tensor]:
        for sentence in sentences:
            if not isinstance(sentence, Sentence):
                raise TypeError(
                    f"expected mcrf.data.types.Sentence objects, got {type(sentence).__name__}; "
                    "wrap words as Sentence(tokens=tuple(words))"
                )
        batch = self.featurize([s.tokens for s in sentences])
        tags = torch.full(batch["word_mask"].shape, IGNORE, dtype=torch.long)  # shape: (B, W)
        if self.with_tags:
            for b, sentence in enumerate(sentences):
                if sentence.tags is None:
                    continue
                for t, tag in enumerate(sentence.tags):
                    index = self.label_index.get(tag)
                    if index is None:
                        where = f" at {sentence.source}" if sentence.source else ""
                        raise DataError(
                            f"tag {tag!r}{where} is not one of the tagger's labels {self.labels}; build the "
                            "tagger with the corpus label set (Corpus.labels) that covers every split"
                        )
                    tags[b, t] = index
        batch["tags"] = tags
        return batch


class Tagger(nn.Module):
    """Sequence tagger: encoder word vectors -> dropout -> ``head`` -> ``crf``/softmax.

    Attributes:
        config: the architecture (labels, scheme, decoder, encoder options, ...), completed by the
            encoder (e.g. the sub-word window of a Hugging Face encoder).
        encoder: an ``mcrf.models.encoders.Encoder``.
        head: ``nn.Linear`` from the encoder's hidden size to ``len(labels)``.
        crf: ``MaskedCRF`` in mode ``config.decoder``, or ``None`` for ``decoder="softmax"``.

    Args:
        config: tagger config.
        encoder: the encoder (built by ``build`` or ``from_pretrained``).
    """

    def __init__(self, config: TaggerConfig, encoder: Encoder) -> None:
        super().__init__()
        expected = encoder_class(config.encoder)
        if not isinstance(encoder, expected):
            raise TypeError(f"config.encoder={config.encoder!r} needs a {expected.__name__}, "
                            f"got {type(encoder).__name__}")
        self.config = encoder.complete(config)
        self.encoder = encoder
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(encoder.hidden_size, len(config.labels))
        self.crf: Optional[MaskedCRF] = None
        if config.decoder != "softmax":
            self.crf = MaskedCRF(len(config.labels), batch_first=True, labels=config.labels,
                                 scheme=config.scheme, mode=config.decoder)
        self.label_index = {label: i for i, label in enumerate(config.labels)}

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, config: TaggerConfig, train_sentences: Optional[Sequence[Sentence]] = None) -> "Tagger":
        """Create a fresh tagger: the encoder's pretrained weights, or a vocabulary from ``train_sentences``.

        Args:
            config: the architecture.
            train_sentences: the training sentences (encoders with a vocabulary build it from them).

        Raises:
            ConfigError: the encoder cannot be built as configured (no training sentences for a
                vocabulary, a window beyond its limit, an unknown option, ...).
        """
        return cls(config, encoder_class(config.encoder).create(config, train_sentences))

    def collator(self, with_tags: bool = True) -> Collator:
        """A picklable ``collate_fn`` for this tagger (see ``Collator``)."""
        return Collator(self.encoder.featurizer(), self.config.labels, with_tags=with_tags)

    # ------------------------------------------------------------------ scores
    def emissions(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Word-level tag scores.

        Args:
            batch: a collated batch (see ``collator``), on the model's device.

        Returns:
            Emissions, shape (B, W, K), float32.
        """
        mask = batch["word_mask"]  # shape: (B, W)
        if mask.shape[1] == 0:
            return torch.zeros(*mask.shape, len(self.config.labels), device=mask.device)  # shape: (B, 0, K)
        states = self.encoder(batch)  # shape: (B, W, H)
        return self.head(self.dropout(states)).float()  # shape: (B, W, K)

    def forward(self, batch: Mapping[str, Tensor], validate: bool = True) -> Tensor:
        """Training loss: mean NLL per non-empty sentence (CRF decoders) or token-mean
        cross-entropy (softmax); 0 for a batch without words.

        Args:
            batch: a collated batch (see ``collator``), on the model's device.
            validate: check that every word has a gold tag and let the CRF check its inputs
                (each check reads a value back to the host, a synchronisation on a GPU). The
                training loop passes ``False``: the data layer has checked the data, and the loss
                then reads nothing back (no boolean-mask indexing either).

        Raises:
            DataError: with ``validate``, when a real word has no gold tag (sentences collated
                without tags).
        """
        emissions = self.emissions(batch)  # shape: (B, W, K)
        mask, tags = batch["word_mask"], batch["tags"]  # shape: (B, W)
        if validate and bool(((tags < 0) & mask).any()):
            raise DataError("forward() computes the training loss and needs a gold tag for every word; the "
                             "batch has sentences without tags. Use decode()/predict() for unlabelled text")
        if self.crf is None:
            gold = tags.masked_fill(~mask, IGNORE).flatten()  # shape: (B*W,)
            total = F.cross_entropy(emissions.flatten(0, 1), gold, ignore_index=IGNORE, reduction="sum")
            return total / mask.sum().clamp(min=1)
        # empty sentences have log-likelihood 0 and do not count in the mean
        llh = self.crf(emissions, tags.masked_fill(~mask, 0), mask, reduction="none", validate=validate)  # shape: (B,)
        return -llh.sum() / mask.any(dim=1).sum().clamp(min=1)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def decode(self, batch: Mapping[str, Tensor], validate: bool = True) -> List[Decoded]:
        """Best tags of each sentence in a collated batch, with confidences (see ``Decoded``).

        One device-to-host copy per batch (``host_table``: paths, the probability of each word's
        tag and of ``O``, lengths, "has a path"); a second, small one only where ``discard`` turns
        a word into a tag other than ``O``. ``validate=False`` skips the CRF's input checks
        (``predict`` passes it on an accelerator: the emissions come from this model, whose CRF
        parameters it checks once per call; on CPU host reads wait for nothing and the checked
        path is the faster one).
        """
        emissions = self.emissions(batch)  # shape: (B, W, K)
        mask = batch["word_mask"].bool()  # shape: (B, W)
        if self.crf is not None:
            paths, scores = self.crf.viterbi(emissions, mask, validate=validate)  # shape: (B, 1, W), (B, 1)
            probabilities = self.crf.marginals(emissions, mask, validate=validate)  # shape: (B, W, K)
            paths, found = paths[:, 0], torch.isfinite(scores[:, 0])
        else:
            probabilities = emissions.float().softmax(dim=-1)  # shape: (B, W, K)
            paths, found = probabilities.argmax(dim=-1), mask.new_ones(mask.shape[0])
        table = host_table(paths, probabilities, mask, found, self.label_index.get("O")).tolist()  # the one copy

        def confidence_of(b: int, i: int, tag: str) -> float:  # the i-th real word of row b
            position = int(mask[b].nonzero()[i])
            return float(probabilities[b, position, self.label_index[tag]])

        return decode_rows(table, self.config.labels, self.config.scheme, self.config.postprocess, confidence_of)

    def predict(self, sentences: Sequence[Sentence], batch_size: int = 32,
                max_words: Optional[int] = BATCH_WORDS) -> List[Decoded]:
        """Tag sentences (gold tags, if any, are ignored), in input order.

        Sentences are sorted by length internally so each batch pads little, and batches are cut
        at ``batch_size`` sentences or ``max_words`` padded words (``mcrf.data.batching.budget_batches``:
        long sentences go in small batches, a very long one alone); empty sentences give an empty
        ``Decoded``. Runs in eval mode and restores the previous mode after.

        Raises:
            ConfigError: ``batch_size`` or ``max_words`` is not a positive integer.
        """
        for name, value in (("batch_size", batch_size), ("max_words", 1 if max_words is None else max_words)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"expected a positive integer {name}, got {value!r}")
        for sentence in sentences:
            if not isinstance(sentence, Sentence):
                raise TypeError(f"expected mcrf.data.types.Sentence objects, got {type(sentence).__name__}; "
                                "wrap words as Sentence(tokens=tuple(words))")
        collate = self.collator(with_tags=False)
        device = next(self.parameters()).device
        results: List[Decoded] = [Decoded() for _ in sentences]
        order = sorted((i for i, s in enumerate(sentences) if len(s.tokens) > 0),
                       key=lambda i: len(sentences[i].tokens))
        was_training = self.training
        self.eval()
        # On an accelerator decode without the CRF's per-batch checks (host reads) after checking its
        # parameters once; on CPU reads wait for nothing and the checked path is the faster one.
        checks = device.type == "cpu"
        if self.crf is not None:
            self.crf.check_parameters()
        try:
            # inference_mode (cheaper than no_grad: no version counters or views tracked); nothing
            # below needs autograd — MaskedCRF.marginals' exact fallback for extreme scores is a
            # plain log-space forward-backward
            with torch.inference_mode():
                for positions in budget_batches([len(sentences[i].tokens) for i in order], batch_size, max_words):
                    chunk = [order[p] for p in positions]
                    batch = {k: v.to(device) for k, v in collate([sentences[i] for i in chunk]).items()}
                    for i, decoded in zip(chunk, self.decode(batch, validate=checks)):
                        results[i] = decoded
        finally:
            self.train(was_training)
        return results

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: Union[str, Path], metrics: Optional[Dict[str, Any]] = None) -> None:
        """Write config.json, model.safetensors, the encoder's files and README.md atomically.

        See ``mcrf.models.io.save_model_dir``.

        Raises:
            ConfigError: the tagger was loaded with ``quantize`` (int8 weights are not saved).
        """
        from mcrf.models.io import save_model_dir
        from mcrf.models.quantize import is_quantized

        if is_quantized(self):
            raise ConfigError("this tagger was quantized when loaded and its int8 weights cannot be saved; save the "
                              "float32 model (load it without quantize) and quantize it when loading for prediction")
        save_model_dir(self, directory, metrics)

    @classmethod
    def from_pretrained(cls, dir_or_hub_id: Union[str, Path], device: Union[str, torch.device, None] = None,
                        quantize: Optional[str] = None) -> "Tagger":
        """Load a saved tagger (safetensors only, no unpickling); see ``mcrf.models.io.load_model_dir``.

        Args:
            dir_or_hub_id: a directory written by ``save_pretrained`` or a hub id.
            device: where to put the model (default CPU).
            quantize: ``"int8"`` quantizes the encoder's Linear layers for CPU prediction
                (``mcrf.models.quantize``), the int8 weights kept in the folder after the first load
                (``mcrf.models.int8cache``); ``None`` keeps float32.

        Raises:
            ConfigError: an unknown ``quantize`` or one the device cannot run (checked before loading).
        """
        from mcrf.models.io import load_model_dir
        from mcrf.models.quantize import check_quantization

        check_quantization(quantize, device)
        return load_model_dir(cls, dir_or_hub_id, device, quantize)
