"""``Tagger``: an encoder's word vectors -> dropout -> linear tag scores -> (masked) CRF or softmax."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mcrf.crf import MaskedCRF
from mcrf.errors import ConfigError
from mcrf.data.alignment import SubwordAligner, gather_words
from mcrf.data.types import Sentence
from mcrf.models.bilstm import BiLSTMEncoder, BiLSTMVocab, bilstm_inputs
from mcrf.models.config import TaggerConfig
from mcrf.models.decoding import Decoded, make_decoded

__all__ = ["Tagger", "Collator"]

IGNORE = -100


class Collator:
    """Picklable ``collate_fn``: sentences -> batch dict of CPU tensors.

    Always present: ``tags`` (B, W) long (label index; ``-100`` at padding and for sentences
    without tags) and ``word_mask`` (B, W) bool. The encoder-specific keys come from
    ``featurize`` (``SubwordAligner`` for HF encoders, ``bilstm_inputs`` for the BiLSTM).

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
                        raise ValueError(
                            f"tag {tag!r}{where} is not one of the tagger's labels {self.labels}; build the "
                            "tagger with the corpus label set (Corpus.labels) that covers every split"
                        )
                    tags[b, t] = index
        batch["tags"] = tags
        return batch


class Tagger(nn.Module):
    """Sequence tagger: encoder -> first-sub-word vectors -> dropout -> ``head`` -> ``crf``/softmax.

    Attributes:
        config: the architecture (labels, scheme, decoder, ...).
        encoder: an HF ``AutoModel`` (pooler removed) or a ``BiLSTMEncoder``.
        tokenizer: the HF fast tokenizer, or ``None`` for the BiLSTM.
        head: ``nn.Linear`` from the encoder's hidden size to ``len(labels)``.
        crf: ``MaskedCRF`` in mode ``config.decoder``, or ``None`` for ``decoder="softmax"``.

    Args:
        config: tagger config.
        encoder: the encoder module (built by ``build`` or ``from_pretrained``).
        tokenizer: the fast tokenizer for HF encoders.
    """

    def __init__(self, config: TaggerConfig, encoder: nn.Module, tokenizer: Any = None) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.tokenizer = tokenizer
        if config.is_bilstm:
            if not isinstance(encoder, BiLSTMEncoder):
                raise TypeError(f"config.encoder='bilstm' needs a BiLSTMEncoder, got {type(encoder).__name__}")
            hidden = encoder.output_size
            self._aligner = None
        else:
            if tokenizer is None:
                raise ValueError(f"the HF encoder {config.encoder!r} needs its tokenizer; use Tagger.build")
            from mcrf.models.hf_encoder import check_window

            check_window(encoder, tokenizer, config.max_length)
            hidden = encoder.config.hidden_size
            self._aligner = SubwordAligner(tokenizer, config.max_length, config.stride)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(hidden, len(config.labels))
        self.crf: Optional[MaskedCRF] = None
        if config.decoder != "softmax":
            self.crf = MaskedCRF(len(config.labels), batch_first=True, labels=config.labels,
                                 scheme=config.scheme, mode=config.decoder)
        self.label_index = {label: i for i, label in enumerate(config.labels)}

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, config: TaggerConfig, train_sentences: Optional[Sequence[Sentence]] = None,
              vocab: Optional[BiLSTMVocab] = None) -> "Tagger":
        """Create a fresh tagger: pretrained HF weights, or a BiLSTM with a vocabulary from ``train_sentences``.

        Args:
            config: the architecture.
            train_sentences: BiLSTM only: the sentences its vocabulary is built from.
            vocab: BiLSTM only: a saved vocabulary to use instead (resuming a run).

        Raises:
            ValueError: for a BiLSTM without training sentences or vocabulary.
        """
        if config.is_bilstm:
            if vocab is not None:
                return cls(config, _bilstm_encoder(config, vocab))
            if not train_sentences:
                raise ValueError("the BiLSTM encoder builds its vocabulary from training sentences; "
                                 "pass train_sentences=corpus.splits['train']")
            vocab = BiLSTMVocab.build([s.tokens for s in train_sentences], config.min_word_count, config.lowercase)
            return cls(config, _bilstm_encoder(config, vocab))
        from mcrf.models.hf_encoder import load_encoder, load_tokenizer

        return cls(config, load_encoder(config.encoder), load_tokenizer(config.encoder))

    def collator(self, with_tags: bool = True) -> Collator:
        """A picklable ``collate_fn`` for this tagger (see ``Collator``)."""
        if self._aligner is not None:
            featurize: Callable = self._aligner
        else:
            featurize = functools.partial(_bilstm_featurize, self.encoder.vocab, self.config.max_word_chars)
        return Collator(featurize, self.config.labels, with_tags=with_tags)

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
        if self._aligner is None:
            states = self.encoder(batch["word_ids"], batch["char_ids"], mask)  # shape: (B, W, H)
        else:
            from mcrf.models.hf_encoder import encode_windows

            windows = encode_windows(self.encoder, batch)  # shape: (N, S, H)
            states = gather_words(windows, batch["word_window"], batch["word_position"])  # shape: (B, W, H)
        return self.head(self.dropout(states)).float()  # shape: (B, W, K)

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Training loss: mean NLL per sentence (CRF decoders) or token-mean cross-entropy (softmax).

        Raises:
            ValueError: when a real word has no gold tag (sentences collated without tags).
        """
        emissions = self.emissions(batch)  # shape: (B, W, K)
        mask, tags = batch["word_mask"], batch["tags"]  # shape: (B, W)
        if bool((tags[mask] < 0).any()):
            raise ValueError("forward() computes the training loss and needs a gold tag for every word; the "
                             "batch has sentences without tags. Use decode()/predict() for unlabelled text")
        if not bool(mask.any()):
            return emissions.sum() * 0.0
        if self.crf is None:
            return F.cross_entropy(emissions[mask], tags[mask])
        rows = mask.any(dim=1)  # shape: (B,) — empty sentences carry no likelihood
        emissions, tags, mask = emissions[rows], tags[rows], mask[rows]
        return self.crf.loss(emissions, tags.masked_fill(~mask, 0), mask, reduction="mean")

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def decode(self, batch: Mapping[str, Tensor]) -> List[Decoded]:
        """Best tags of each sentence in a collated batch, with confidences (see ``Decoded``)."""
        emissions = self.emissions(batch)  # shape: (B, W, K)
        mask = batch["word_mask"]  # shape: (B, W)
        results = [Decoded() for _ in range(mask.shape[0])]
        rows = [b for b in range(mask.shape[0]) if bool(mask[b].any())]
        if not rows:
            return results
        emissions, mask = emissions[rows], mask[rows]
        if self.crf is not None:
            paths = self.crf.decode(emissions, mask)
            probabilities = self.crf.marginals(emissions, mask)  # shape: (R, W, K)
        else:
            probabilities = emissions.softmax(dim=-1)  # shape: (R, W, K)
            paths = [probabilities[i][mask[i]].argmax(dim=-1).tolist() for i in range(len(rows))]
        labels = self.config.labels
        for i, b in enumerate(rows):
            raw = [labels[k] for k in paths[i]]
            results[b] = make_decoded(raw, probabilities[i][mask[i]], self.label_index,
                                      self.config.scheme, self.config.postprocess)
        return results

    def predict(self, sentences: Sequence[Sentence], batch_size: int = 32) -> List[Decoded]:
        """Tag sentences (gold tags, if any, are ignored), in input order.

        Sentences are sorted by length internally so each batch pads little; empty sentences
        give an empty ``Decoded``. Runs in eval mode and restores the previous mode after.

        Raises:
            ValueError: for ``batch_size < 1``.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"expected a positive integer batch_size, got {batch_size!r}")
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
        try:
            # inference_mode (cheaper than no_grad: no version counters or views tracked); nothing
            # below needs autograd — MaskedCRF.marginals' exact fallback for extreme scores is a
            # plain log-space forward-backward
            with torch.inference_mode():
                for start in range(0, len(order), batch_size):
                    chunk = order[start : start + batch_size]
                    batch = {k: v.to(device) for k, v in collate([sentences[i] for i in chunk]).items()}
                    for i, decoded in zip(chunk, self.decode(batch)):
                        results[i] = decoded
        finally:
            self.train(was_training)
        return results

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: Union[str, Path], metrics: Optional[Dict[str, Any]] = None) -> None:
        """Write config.json, model.safetensors, tokenizer or vocab files and README.md atomically.

        See ``mcrf.models.io.save_tagger``.

        Raises:
            ConfigError: the tagger was loaded with ``quantize`` (int8 weights are not saved).
        """
        from mcrf.models.io import save_tagger
        from mcrf.models.quantize import is_quantized

        if is_quantized(self):
            raise ConfigError("this tagger was quantized when loaded and its int8 weights cannot be saved; save the "
                              "float32 model (load it without quantize) and quantize it when loading for prediction")
        save_tagger(self, directory, metrics)

    @classmethod
    def from_pretrained(cls, dir_or_hub_id: Union[str, Path], device: Union[str, torch.device, None] = None,
                        quantize: Optional[str] = None) -> "Tagger":
        """Load a saved tagger (safetensors only, no unpickling); see ``mcrf.models.io.load_tagger``.

        Args:
            dir_or_hub_id: a directory written by ``save_pretrained`` or a hub id.
            device: where to put the model (default CPU).
            quantize: ``"int8"`` quantizes the encoder's Linear/LSTM layers for CPU prediction
                (``mcrf.models.quantize``); ``None`` keeps float32.

        Raises:
            ConfigError: an unknown ``quantize`` or one the device cannot run (checked before loading).
        """
        from mcrf.models.io import load_tagger
        from mcrf.models.quantize import check_quantization, quantize_module

        check_quantization(quantize, device)
        tagger = load_tagger(cls, dir_or_hub_id, device)
        if quantize is not None:
            quantize_module(tagger.encoder, quantize)
        return tagger


def _bilstm_encoder(config: TaggerConfig, vocab: BiLSTMVocab) -> BiLSTMEncoder:
    """The BiLSTM encoder described by ``config`` over ``vocab``."""
    return BiLSTMEncoder(vocab, config.word_dim, config.char_dim, config.char_filters, config.char_kernel,
                         config.lstm_hidden, config.lstm_layers, config.dropout, config.word_dropout)


def _bilstm_featurize(vocab: BiLSTMVocab, max_word_chars: int, sentences: Sequence[Sequence[str]]
                      ) -> Dict[str, Tensor]:
    """Module-level (picklable) adapter for ``bilstm_inputs``."""
    return bilstm_inputs(vocab, sentences, max_word_chars)
