"""``MaskedCRFForTokenClassification``: any ``AutoModel`` backbone -> dropout -> linear -> ``MaskedCRF``.

A Hugging Face ``PreTrainedModel`` that drops into the ``run_ner.py`` recipe (``Trainer``,
``DataCollatorForTokenClassification``, labels at ``-100`` on special tokens and non-first sub-words).

Which sub-words the CRF runs over (its positions):

- with ``labels`` (training, ``Trainer.evaluate``/``predict`` on labelled data): the positions whose
  label is not ``-100`` — the first sub-word of each word in the ``run_ner.py`` recipe;
- without ``labels``: the ``word_mask`` input, ``(B, S)`` true at the first sub-word of each word
  (``mcrf.hf.word_mask(encoding)`` builds it from a fast tokenizer's ``word_ids()``; for ``Trainer.predict``
  a ``word_starts`` column padded by ``DataCollatorForMaskedCRF``, see ``mcrf.hf.collator``; the
  ``"mcrf-token-classification"`` pipeline passes it). Without either the model raises a ``ConfigError``.

Outputs (``MaskedCRFOutput``, a ``TokenClassifierOutput``):

- ``loss``: mean negative log-likelihood of the gold tags per sentence (CRF math in float32);
- ``logits`` ``(B, S, K)``: in eval mode the masked Viterbi path as one-hot scores (1 at the path's
  tag, 0 elsewhere; all 0 off the CRF positions), so an argmax over the last axis — ``run_ner.py``'s
  ``compute_metrics`` — gives the best legal tag sequence. In training mode they are the raw tag
  scores (no decoding cost per step);
- ``marginals`` ``(B, S, K)`` with ``output_marginals=True``: the CRF's posterior probability of each
  tag at each CRF position (over legal paths; 0 off the positions). Off by default so that
  ``Trainer.predict`` returns the logits alone, as ``run_ner.py`` expects.

Wrong use raises a ``mcrf.errors.UserError`` that is also a ``ValueError`` (``DataError`` for bad
labels, ``ConfigError`` for bad settings or backbones), with one line saying what to fix.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch
from torch import Tensor, nn
from transformers import AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import TokenClassifierOutput

from mcrf.crf.layer import MaskedCRF
from mcrf.data.alignment import SubwordAligner, gather_words
from mcrf.errors import ConfigError, DataError, UserError
from mcrf.hf.config import MODEL_TYPE, MaskedCRFConfig, check_config
from mcrf.models.encoders.hf import encoder_from_config

__all__ = ["MaskedCRFForTokenClassification", "MaskedCRFOutput", "IGNORE"]

IGNORE = -100


@dataclass
class MaskedCRFOutput(TokenClassifierOutput):
    """``TokenClassifierOutput`` plus ``marginals`` (B, S, K), present with ``output_marginals=True``."""

    marginals: Optional[Tensor] = None


def check_backbone(model: nn.Module) -> nn.Module:
    """The backbone without its sentence pooler, checked to give one vector per input token.

    Raises:
        ConfigError: an encoder-decoder model or one that takes no ``input_ids`` (no token-level output).
    """
    config = getattr(model, "config", None)
    name = getattr(config, "model_type", type(model).__name__)
    if getattr(config, "is_encoder_decoder", False) or "input_ids" not in inspect.signature(model.forward).parameters:
        raise ConfigError(f"the backbone {name!r} ({type(model).__name__}) has no token-level output over input_ids; "
                          "use a text encoder such as BERT, RoBERTa, DeBERTa, XLM-R or ELECTRA")
    if getattr(model, "pooler", None) is not None:
        model.pooler = None
    return model


class MaskedCRFForTokenClassification(PreTrainedModel):
    """Token classifier with a masked CRF over the first sub-word of each word (see the module docstring).

    Build a fresh head on a pretrained backbone the way HF users build a token classifier::

        model = MaskedCRFForTokenClassification.from_pretrained(
            "bert-base-cased", id2label=id2label, label2id=label2id)  # scheme detected, or scheme="BIO"

    and load a saved one with ``from_pretrained(folder)`` or, after ``import mcrf.hf``,
    ``AutoModelForTokenClassification.from_pretrained(folder)``.

    Attributes:
        encoder: the backbone, an ``AutoModel`` (sentence pooler removed).
        dropout: dropout before ``classifier``.
        classifier: ``nn.Linear(hidden_size, K)``, the tag scores.
        crf: the ``mcrf.MaskedCRF`` in ``config.mode``.
    """

    config_class = MaskedCRFConfig
    base_model_prefix = "encoder"
    accepts_loss_kwargs = False  # the loss is a per-sentence mean; the Trainer scales it for accumulation
    main_input_name = "input_ids"

    @property
    def supports_gradient_checkpointing(self) -> bool:  # TrainingArguments(gradient_checkpointing=True)
        """Whether the backbone can recompute its layers in the backward pass (the head has none to recompute)."""
        return bool(getattr(self.encoder, "supports_gradient_checkpointing", False))

    # The head has no attention: any implementation the backbone takes is accepted here, and the backbone checks it.
    _supports_sdpa = _supports_flash_attn = _supports_flash_attn_2 = _supports_flex_attn = True

    def __init__(self, config: MaskedCRFConfig) -> None:
        attention = getattr(config, "_attn_implementation_internal", None)  # from_pretrained(attn_implementation=)
        super().__init__(config)
        check_config(config)
        self.encoder = check_backbone(_backbone_from_config(config.backbone_config, attention))
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(int(self.encoder.config.hidden_size), len(config.labels))
        self.crf = MaskedCRF(len(config.labels), batch_first=True, labels=config.labels, scheme=config.scheme,
                             mode=config.mode)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if module is self.classifier:
            std = float(self.encoder.config.to_dict().get("initializer_range", 0.02))
            nn.init.normal_(module.weight, std=std)
            nn.init.zeros_(module.bias)
        elif isinstance(module, MaskedCRF):
            module.reset_parameters()
            self._set_constraints()

    @torch.no_grad()
    def _set_constraints(self) -> None:
        """Recompute the CRF's allowed-transition tables from the labels and scheme.

        They are non-persistent buffers (not in the weights file); ``from_pretrained`` builds the model
        on the meta device and would leave them uninitialised.
        """
        from mcrf.crf.schemes import allowed_transitions

        tables = allowed_transitions(self.config.labels, self.config.scheme)
        for name, table in zip(("allowed_start", "allowed_transitions", "allowed_end"), tables):
            buffer = getattr(self.crf, name)
            if buffer.is_meta:
                setattr(self.crf, name, table.clone())
            else:
                buffer.copy_(table)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Union[str, Path], *model_args: Any,
                        **kwargs: Any) -> "MaskedCRFForTokenClassification":
        """Load a saved masked-CRF model, or build a fresh head on a pretrained backbone.

        Args:
            pretrained_model_name_or_path: a folder (or hub id) saved by ``save_pretrained``, or a
                backbone's (``"bert-base-cased"``).
            **kwargs: for a backbone: ``id2label``/``label2id`` (required), ``scheme`` (default: detected
                from the labels), ``mode`` (default ``"mcrf"``), ``classifier_dropout`` (0.1); further
                keywords go to ``AutoModel.from_pretrained``. For a saved model: ``from_pretrained``'s own.
                Weights are read from safetensors only and remote code is never run.

        Raises:
            ConfigError: ``trust_remote_code=True``, missing or unfitting labels, an unusable backbone.
        """
        if kwargs.pop("trust_remote_code", False):
            raise ConfigError("mcrf never runs code from a model repository; drop trust_remote_code=True")
        if kwargs.setdefault("use_safetensors", True) is not True:  # never unpickle weights
            raise ConfigError(f"mcrf reads weights from safetensors only (a pickle can run code); drop "
                              f"use_safetensors={kwargs['use_safetensors']!r}")
        config = kwargs.get("config")
        if isinstance(config, MaskedCRFConfig) or (config is None and _model_type(pretrained_model_name_or_path,
                                                                                   kwargs) == MODEL_TYPE):
            try:
                loaded = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
            except OSError as error:  # above all: no model.safetensors (a pytorch_model.bin is never read)
                raise ConfigError(f"cannot load {str(pretrained_model_name_or_path)!r}: {' '.join(str(error).split())} "
                                  "(mcrf reads model.safetensors only, never a pickled pytorch_model.bin)") from None
            (loaded[0] if isinstance(loaded, tuple) else loaded)._set_constraints()  # output_loading_info
            return loaded
        return cls._on_backbone(str(pretrained_model_name_or_path), **kwargs)

    @classmethod
    def _on_backbone(cls, name: str, *, id2label: Optional[Dict[int, str]] = None,
                     label2id: Optional[Dict[str, int]] = None, scheme: Optional[str] = None, mode: str = "mcrf",
                     classifier_dropout: float = 0.1, config: Optional[PretrainedConfig] = None,
                     **kwargs: Any) -> "MaskedCRFForTokenClassification":
        """A fresh head on the pretrained backbone ``name`` (see ``from_pretrained``)."""
        if id2label is None and label2id is not None:
            id2label = {int(i): label for label, i in label2id.items()}
        if id2label is None:
            raise ConfigError(f"a new head on {name!r} needs its labels; pass id2label={{0: 'O', 1: 'B-PER', ...}} "
                              "(and label2id) with the data's tags")
        id2label = {int(i): label for i, label in id2label.items()}
        label2id = label2id or {label: i for i, label in id2label.items()}
        try:
            backbone = AutoModel.from_pretrained(name, config=config, trust_remote_code=False, **kwargs)
        except (OSError, ValueError) as error:  # no such folder/repo, no safetensors, no AutoModel for the type
            raise ConfigError(f"cannot load the backbone {name!r} with AutoModel: {error}") from None
        backbone_config = backbone.config.to_dict()
        crf_config = MaskedCRFConfig(backbone_config=backbone_config, scheme=scheme, mode=mode,
                                     classifier_dropout=classifier_dropout, encoder_name=name,
                                     id2label=id2label, label2id=label2id)
        model = cls(crf_config)
        model.encoder = check_backbone(backbone)
        return model.to(backbone.dtype)  # a head in the backbone's dtype (from_pretrained(..., dtype=...))

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: Optional[Tensor] = None,
        attention_mask: Optional[Tensor] = None,
        token_type_ids: Optional[Tensor] = None,
        position_ids: Optional[Tensor] = None,
        inputs_embeds: Optional[Tensor] = None,
        labels: Optional[Tensor] = None,
        word_mask: Optional[Tensor] = None,
        output_marginals: Optional[bool] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[MaskedCRFOutput, tuple]:
        """Loss, Viterbi-path logits and (on request) marginals; see the module docstring.

        Args:
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds: the backbone's
                inputs, shape (B, S).
            labels: (B, S) long tag ids, ``-100`` where no word starts; they select the CRF positions.
            word_mask: (B, S) bool/0-1, the CRF positions when there are no ``labels``.
            output_marginals: also return ``marginals`` (B, S, K).

        Raises:
            DataError: a label id outside ``0..K-1`` (and not ``-100``), or (mode ``"mcrf"``) gold tags
                that break the scheme.
            ConfigError: neither ``labels`` nor ``word_mask``; a backbone output without
                ``last_hidden_state``.
        """
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
                  "position_ids": position_ids, "inputs_embeds": inputs_embeds,
                  "output_attentions": output_attentions, "output_hidden_states": output_hidden_states}
        outputs = self.encoder(**{k: v for k, v in inputs.items() if v is not None}, return_dict=True)
        emissions = self.classifier(self.dropout(self._states(outputs))).float()  # shape: (B, S, K)
        positions = self._positions(labels, word_mask, emissions)  # shape: (B, S)
        loss = None
        if labels is not None:
            loss = self._loss(emissions, labels, positions)
        if self.training and not output_marginals:
            logits = emissions
        else:
            logits = self._path_scores(emissions, positions)  # shape: (B, S, K)
        marginals = self.crf.marginals(emissions, positions) if output_marginals else None  # shape: (B, S, K)
        if return_dict is False:
            return tuple(v for v in (loss, logits, marginals) if v is not None)
        return MaskedCRFOutput(loss=loss, logits=logits, marginals=marginals,
                               hidden_states=getattr(outputs, "hidden_states", None),
                               attentions=getattr(outputs, "attentions", None))

    def _states(self, outputs: Any) -> Tensor:
        """The backbone's ``last_hidden_state`` (B, S, H), or a ConfigError for a backbone without one."""
        states = getattr(outputs, "last_hidden_state", None)
        if not isinstance(states, Tensor) or states.dim() != 3:
            raise ConfigError(f"the backbone {type(self.encoder).__name__} returned no last_hidden_state "
                              "(B, S, H); use a text encoder with token-level output")
        return states

    # ------------------------------------------------------------------ long sentences, read in windows
    def aligner(self, tokenizer: Any) -> SubwordAligner:
        """What cuts sentences into this model's windows: ``config.window_size`` sub-words (default:
        the backbone's and the tokenizer's limit) overlapping by ``config.window_stride`` (default: a quarter).

        Raises:
            ConfigError: a window longer than the backbone or the tokenizer takes.
        """
        from mcrf.models.encoders.hf import window_limit

        limit, why = window_limit(self.encoder, tokenizer)
        length = self.config.window_size or limit
        if length > limit:
            raise ConfigError(f"window_size={length} exceeds what the backbone takes: {limit} sub-words "
                              f"({why}); lower it in config.json or leave it unset")
        stride = length // 4 if self.config.window_stride is None else self.config.window_stride
        return SubwordAligner(tokenizer, length, stride)

    def word_scores(self, windows: Mapping[str, Tensor]) -> Tensor:
        """Tag scores of each word, read from its first sub-word in its owner window, as ``mcrf predict`` does.

        Args:
            windows: what ``self.aligner(tokenizer)(sentences)`` gives: ``input_ids``, ``attention_mask``
                (and ``token_type_ids``), shape (N, S), one row per window; ``word_window`` and
                ``word_position``, shape (B, W).

        Returns:
            Float32 scores, shape (B, W, K); rows past a sentence's length are arbitrary (mask them with
            ``word_mask``).
        """
        inputs = {name: windows[name] for name in ("input_ids", "attention_mask", "token_type_ids")
                  if name in windows}
        states = self._states(self.encoder(**inputs, return_dict=True))  # shape: (N, S, H)
        words = gather_words(states, windows["word_window"], windows["word_position"])  # shape: (B, W, H)
        return self.classifier(self.dropout(words)).float()  # shape: (B, W, K)

    def _positions(self, labels: Optional[Tensor], mask: Optional[Tensor], emissions: Tensor) -> Tensor:
        """The CRF positions (B, S) bool: labels other than -100, else the word mask."""
        if labels is not None:
            if labels.shape != emissions.shape[:2]:
                raise DataError(f"expected labels of shape {tuple(emissions.shape[:2])} (one per input token), "
                                f"got {tuple(labels.shape)}")
            return labels != IGNORE
        if mask is None:
            raise ConfigError("MaskedCRFForTokenClassification needs labels or a word_mask (true at the first "
                              "sub-word of each word) to know its CRF positions; build it with "
                              "mcrf.hf.word_mask(encoding) (in a Trainer: a word_starts column and "
                              "DataCollatorForMaskedCRF), or use pipeline('mcrf-token-classification', ...); "
                              "in a Trainer, leave label_smoothing_factor at 0 (it takes the labels away from the "
                              "model, and a CRF computes its own loss)")
        if mask.shape != emissions.shape[:2]:
            raise DataError(f"expected word_mask of shape {tuple(emissions.shape[:2])}, got {tuple(mask.shape)}")
        return mask.bool()

    def _loss(self, emissions: Tensor, labels: Tensor, positions: Tensor) -> Tensor:
        """Mean NLL per sentence with at least one position (float32)."""
        num_labels = emissions.shape[-1]
        bad = positions & ((labels < 0) | (labels >= num_labels))  # shape: (B, S)
        if bool(bad.any()):
            b, s = bad.nonzero()[0].tolist()
            raise DataError(f"labels[{b}, {s}] = {int(labels[b, s])} is not a label id of this model: expected "
                            f"-100 or 0..{num_labels - 1} ({self.config.labels}); map the data's tags with the "
                            "model's label2id")
        tags = labels.masked_fill(~positions, 0)  # shape: (B, S)
        try:
            llh = self.crf(emissions, tags, positions, reduction="none")  # shape: (B,)
        except ValueError as error:
            if str(error).startswith("illegal gold tag sequence"):  # mode "mcrf" gives it zero likelihood
                raise DataError(f"labels: {error}") from None
            raise
        return -llh.sum() / positions.any(dim=1).sum().clamp(min=1)

    def _path_scores(self, emissions: Tensor, positions: Tensor) -> Tensor:
        """One-hot scores (B, S, K) of the masked Viterbi path at the CRF positions, 0 elsewhere."""
        paths, _ = self.crf.viterbi(emissions, positions)  # shape: (B, 1, S)
        path = paths[:, 0]  # shape: (B, S), -1 off the positions
        scores = torch.zeros_like(emissions)  # shape: (B, S, K)
        scores.scatter_(2, path.clamp(min=0).unsqueeze(-1), 1.0)
        return scores * (path >= 0).unsqueeze(-1)

    # ------------------------------------------------------------------ saving
    def resize_token_embeddings(self, *args: Any, **kwargs: Any) -> nn.Embedding:
        """The backbone's ``resize_token_embeddings`` (same arguments), its new size kept in ``config.backbone_config``
        so that the saved folder loads again (``PreTrainedModel``'s own would record it on this config only)."""
        embeddings = self.encoder.resize_token_embeddings(*args, **kwargs)
        self.config.backbone_config = self.encoder.config.to_dict()
        return embeddings

    def save_pretrained(self, save_directory: Union[str, Path], *args: Any, **kwargs: Any) -> None:
        """``PreTrainedModel.save_pretrained`` (config.json, model.safetensors) plus a model card README.md.

        The tokenizer is saved by ``Trainer`` (pass it as ``processing_class``) or by
        ``tokenizer.save_pretrained(save_directory)``; ``mcrf convert`` writes it too.
        """
        from mcrf.hf.card import model_card

        self.config.backbone_config = self.encoder.config.to_dict()  # what the backbone is now (vocab size, ...)
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            (Path(save_directory) / "README.md").write_text(model_card(self.config), encoding="utf-8")


def _model_type(name: Union[str, Path], kwargs: Dict[str, Any]) -> Optional[str]:
    """``model_type`` of the config.json at ``name`` (``None`` when there is none)."""
    keys = ("cache_dir", "revision", "token", "local_files_only", "subfolder")
    if str(name).startswith(("/", ".", "~")) and not Path(name).expanduser().is_dir():
        raise ConfigError(f"no model folder at {str(name)!r}; pass a folder saved by save_pretrained or a "
                          "backbone's folder or hub id")
    try:
        data, _ = PretrainedConfig.get_config_dict(str(name), **{k: kwargs[k] for k in keys if k in kwargs})
    except OSError as error:
        raise ConfigError(f"cannot read a config.json at {str(name)!r}: {error}") from None
    return data.get("model_type")


def _backbone_from_config(backbone_config: Dict[str, Any], attention: Optional[str] = None) -> nn.Module:
    """The backbone with random weights, from its config dict (no download).

    The dict's ``dtype`` is dropped: the backbone gets the dtype the whole model is built in
    (``from_pretrained(..., dtype=...)``), as its head does. ``attention``: the requested attention
    implementation (``"eager"``, ``"sdpa"``, ...), ``None`` for the backbone's default.
    """
    data = {k: v for k, v in backbone_config.items() if k not in ("dtype", "torch_dtype")}
    if attention is not None:
        data["attn_implementation"] = attention
    try:
        return encoder_from_config(data)
    except UserError:
        raise
    except ValueError as error:  # no AutoModel for the config type (e.g. a task-only architecture)
        raise ConfigError(f"cannot build the backbone {backbone_config.get('model_type')!r} with AutoModel: "
                          f"{error}") from None

