"""Hugging Face encoders (any ``AutoModel``) and their fast tokenizers, loaded lazily.

``transformers`` is imported inside the functions so that ``import mcrf`` stays light.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict

from torch import nn

__all__ = ["load_tokenizer", "load_encoder", "encoder_from_config", "check_window", "encode_windows"]

logger = logging.getLogger(__name__)


def _byte_level_without_prefix_space(tokenizer: Any) -> bool:
    """True when the backend pre-tokenizer is byte-level BPE that would not add a space before words.

    Such tokenizers (RoBERTa, GPT-2, BART, DeBERTa-v1, Longformer) tokenize a pre-split word
    differently at the start of a sentence than inside it unless ``add_prefix_space=True``.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    pre = json.loads(backend.to_str()).get("pre_tokenizer")

    def walk(node: Any) -> bool:
        if isinstance(node, dict):
            if node.get("type") == "ByteLevel" and not node.get("add_prefix_space", False):
                return True
            return any(walk(v) for v in node.values())
        if isinstance(node, list):
            return any(walk(v) for v in node)
        return False

    return walk(pre)


def load_tokenizer(name_or_path: str) -> Any:
    """Load the fast tokenizer of an encoder, ready for pre-split words.

    Args:
        name_or_path: hub id or local directory.

    Returns:
        A fast tokenizer; byte-level BPE tokenizers are loaded with ``add_prefix_space=True``.

    Raises:
        TypeError: when only a slow (Python) tokenizer exists.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name_or_path, use_fast=True)
    if _byte_level_without_prefix_space(tokenizer):
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, use_fast=True, add_prefix_space=True)
        if _byte_level_without_prefix_space(tokenizer):
            raise ValueError(
                f"the tokenizer of {name_or_path!r} ignores add_prefix_space=True; pre-split words would be "
                "tokenized inconsistently. Save a tokenizer.json whose ByteLevel pre-tokenizer has "
                "add_prefix_space=true"
            )
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(
            f"{name_or_path!r} has only a slow tokenizer ({type(tokenizer).__name__}); mcrf needs a fast one "
            "(word_ids() maps sub-words to words). Install `tokenizers`/`sentencepiece` so it can be "
            "converted, or save a tokenizer.json with the model"
        )
    return tokenizer


def _drop_pooler(model: nn.Module) -> nn.Module:
    """Check the model is an encoder; remove its sentence pooler (unused; it would get no gradient).

    Raises:
        ValueError: for encoder-decoder models (T5, BART), whose ``AutoModel`` needs decoder inputs.
    """
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        raise ValueError(
            f"{getattr(config, 'model_type', type(model).__name__)!r} is an encoder-decoder model; a tagger "
            "needs an encoder-only model (BERT, RoBERTa, DeBERTa, XLM-R, ELECTRA, ...)"
        )
    if getattr(model, "pooler", None) is not None:
        model.pooler = None
    return model


def load_encoder(name_or_path: str) -> nn.Module:
    """Load pretrained encoder weights with ``AutoModel`` (hub id or local directory), pooler removed."""
    from transformers import AutoModel

    return _drop_pooler(AutoModel.from_pretrained(name_or_path))


def encoder_from_config(config: Dict[str, Any]) -> nn.Module:
    """Rebuild an encoder with random weights from its saved config dict (no download).

    Args:
        config: ``PretrainedConfig.to_dict()`` output (must hold ``model_type``).

    Raises:
        ValueError: when ``model_type`` is missing or unknown to the installed transformers.
    """
    from transformers import AutoConfig, AutoModel

    data = dict(config)
    model_type = data.pop("model_type", None)
    if not model_type:
        raise ValueError("the saved encoder config has no 'model_type'; expected a transformers config dict")
    try:
        encoder_config = AutoConfig.for_model(model_type, **data)
    except ValueError as error:
        raise ValueError(
            f"transformers does not know encoder type {model_type!r} ({error}); upgrade transformers"
        ) from error
    return _drop_pooler(AutoModel.from_config(encoder_config))


def check_window(encoder: nn.Module, tokenizer: Any, max_length: int) -> None:
    """Check that ``max_length`` fits the encoder's position embeddings and the tokenizer limit.

    Raises:
        ValueError: naming both numbers and the fix.
    """
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and limit < 1_000_000 and max_length > limit:
        raise ValueError(f"max_length={max_length} exceeds the tokenizer's model_max_length={limit}; "
                         f"pass max_length <= {limit}")
    positions = getattr(getattr(encoder, "config", None), "max_position_embeddings", None)
    if isinstance(positions, int) and max_length > positions:
        raise ValueError(f"max_length={max_length} exceeds the encoder's max_position_embeddings={positions}; "
                         f"pass max_length <= {positions}")


def encode_windows(encoder: nn.Module, batch: Dict[str, Any]):
    """Run the encoder over the windows of a collated batch.

    Args:
        encoder: an ``AutoModel``.
        batch: holds ``input_ids`` (N, S), ``attention_mask`` (N, S) and optionally ``token_type_ids``.

    Returns:
        Last hidden states, shape (N, S, H).
    """
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if "token_type_ids" in batch:
        inputs["token_type_ids"] = batch["token_type_ids"]
    return encoder(**inputs).last_hidden_state  # shape: (N, S, H)
