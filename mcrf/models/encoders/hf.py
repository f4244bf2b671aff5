"""Hugging Face encoders (any ``AutoModel``), fine-tuned, with first-sub-word pooling and overlapping windows.

``transformers`` is imported inside the functions so that ``import mcrf`` stays light.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

from torch import Tensor, nn

from mcrf.data.alignment import SubwordAligner, gather_words
from mcrf.errors import ConfigError, ModelDirError
from mcrf.fields import integer, option, validate
from mcrf.models.encoders.base import Encoder, Featurizer
from mcrf.models.safety import read_model_json, refuse_custom_code

__all__ = ["HFEncoder", "HFOptions", "load_tokenizer", "load_encoder", "encoder_from_config", "window_limit"]

logger = logging.getLogger(__name__)

#: A tokenizer's ``model_max_length`` at or above this means "no limit set" (transformers uses 1e30).
_UNSET_LIMIT = 1_000_000
#: A numbered transformer layer in a parameter name: ``model.encoder.layer.3.``, ``model.transformer.layer.3.``
#: (DistilBERT), ``model.layers.3.``.
_LAYER = re.compile(r"\blayers?\.(\d+)\.")


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

    Never runs code from the folder: one that asks for it is refused (``mcrf.models.safety``) and
    ``trust_remote_code=False`` is passed, so ``transformers`` never prompts on stdin either.

    Raises:
        ConfigError: no tokenizer there, only a slow (Python) one, or one that cannot take pre-split words.
        ModelDirError: the folder asks to run code it carries.
    """
    from transformers import AutoTokenizer

    refuse_custom_code(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, use_fast=True, trust_remote_code=False)
    except OSError as error:  # no such folder or hub id
        raise ConfigError(f"cannot load the tokenizer of {name_or_path!r}: {_one_line(error)}; pass the name or "
                          "folder of a Hugging Face model with its tokenizer files") from None
    if _byte_level_without_prefix_space(tokenizer):
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, use_fast=True, add_prefix_space=True,
                                                  trust_remote_code=False)
        if _byte_level_without_prefix_space(tokenizer):
            raise ConfigError(
                f"the tokenizer of {name_or_path!r} ignores add_prefix_space=True; pre-split words would be "
                "tokenized inconsistently. Save a tokenizer.json whose ByteLevel pre-tokenizer has "
                "add_prefix_space=true"
            )
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            f"{name_or_path!r} has only a slow tokenizer ({type(tokenizer).__name__}); mcrf needs a fast one "
            "(word_ids() maps sub-words to words). Install `tokenizers`/`sentencepiece` so it can be "
            "converted, or save a tokenizer.json with the model"
        )
    return tokenizer


def _one_line(error: Exception) -> str:
    """``transformers``' multi-line messages as one line."""
    return " ".join(str(error).split())


def _drop_pooler(model: nn.Module) -> nn.Module:
    """Check the model is an encoder; remove its sentence pooler (unused; it would get no gradient).

    Raises:
        ValueError: for encoder-decoder models (T5, BART), whose ``AutoModel`` needs decoder inputs.
    """
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        raise ConfigError(
            f"{getattr(config, 'model_type', type(model).__name__)!r} is an encoder-decoder model; a tagger "
            "needs an encoder-only model (BERT, RoBERTa, DeBERTa, XLM-R, ELECTRA, ...)"
        )
    if getattr(model, "pooler", None) is not None:
        model.pooler = None
    return model


def _check_encoder_folder(name_or_path: str) -> None:
    """Refuse a local folder that is no Hugging Face model before ``AutoModel`` fails on it with a ``ValueError``.

    Raises:
        ConfigError: no ``config.json``, an mcrf tagger's, or one whose ``model_type`` transformers does not know.
        ModelDirError: ``config.json`` is not valid JSON.
    """
    from transformers import CONFIG_MAPPING

    folder = Path(name_or_path)
    if not folder.is_dir():
        return  # a hub id, or a missing folder: AutoModel's OSError says so
    fix = "pass 'bilstm' or the name or folder of a Hugging Face model (with its config.json and weights)"
    path = folder / "config.json"
    if not path.is_file():
        raise ConfigError(f"expected a Hugging Face model folder at {folder} (--encoder), got a folder without "
                          f"config.json; {fix}")
    config = read_model_json(path)
    if not isinstance(config, dict):
        raise ConfigError(f"{path} is not a Hugging Face model config (expected a JSON object); {fix}")
    if config.get("format") == "mcrf-tagger":
        raise ConfigError(f"{folder} is a trained mcrf tagger, not a pretrained encoder; {fix} (its config.json "
                          f"names the one it was trained from), or continue its run with mcrf train --resume")
    if config.get("model_type") not in CONFIG_MAPPING:
        raise ConfigError(f"{path} has model_type {config.get('model_type')!r}, which transformers does not know "
                          f"as an encoder; {fix}")


def load_encoder(name_or_path: str) -> nn.Module:
    """Load pretrained encoder weights with ``AutoModel`` (hub id or local directory), pooler removed.

    Never runs code from the folder (see ``load_tokenizer``).
    """
    from transformers import AutoModel

    refuse_custom_code(name_or_path)
    _check_encoder_folder(name_or_path)
    try:
        model = AutoModel.from_pretrained(name_or_path, trust_remote_code=False)
    except OSError as error:  # not a local folder, not on the hub (or offline), no weights
        raise ConfigError(f"cannot load the encoder {name_or_path!r}: {_one_line(error)}; pass 'bilstm' or the "
                          "name or folder of a Hugging Face model") from None
    return _drop_pooler(model)


def encoder_from_config(config: Dict[str, Any]) -> nn.Module:
    """Rebuild an encoder from its saved config dict (no download), its weights uninitialised: for loading only.

    Args:
        config: ``PretrainedConfig.to_dict()`` output (must hold ``model_type``).

    Raises:
        ValueError: when ``model_type`` is missing or unknown to the installed transformers.
    """
    from transformers import AutoConfig, AutoModel

    data = dict(config)
    model_type = data.pop("model_type", None)
    # transformers 4.x (4.46 at least) saves this private flag in to_dict(); from_config then skips choosing the
    # attention kernel and a loaded tagger runs eager attention where the trained one ran sdpa
    data.pop("_attn_implementation_autoset", None)
    if not model_type:
        raise ModelDirError("the saved encoder config has no 'model_type'; expected a transformers config dict")
    try:
        encoder_config = AutoConfig.for_model(model_type, **data)
    except ValueError as error:
        raise ModelDirError(
            f"transformers does not know encoder type {model_type!r} ({error}); upgrade transformers"
        ) from error
    try:
        from transformers.initialization import no_init_weights  # transformers 5
    except ImportError:  # transformers 4.x (setup.cfg allows >= 4.46)
        from transformers.modeling_utils import no_init_weights

    with no_init_weights():  # the loader overwrites every weight (strictly): random ones would cost ~1 s
        return _drop_pooler(AutoModel.from_config(encoder_config))


def window_limit(model: nn.Module, tokenizer: Any) -> "tuple[int, str]":
    """The longest window (sub-words including special tokens) that both the model and the tokenizer take.

    The model's limit is ``max_position_embeddings``, less the position offset of RoBERTa-style
    embeddings (positions start after the padding index); the tokenizer's is ``model_max_length``
    when it sets one.

    Returns:
        The limit, and where it comes from (``"max_position_embeddings=128"``) for messages.

    Raises:
        ConfigError: neither gives a limit.
    """
    limits = []
    config = getattr(model, "config", None)
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        offset = getattr(getattr(model, "embeddings", None), "padding_idx", None)
        offset = offset + 1 if isinstance(offset, int) else 0
        limits.append((positions - offset, f"max_position_embeddings={positions}"
                                           + (f" less a position offset of {offset}" if offset else "")))
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < _UNSET_LIMIT:
        limits.append((declared, f"the tokenizer's model_max_length={declared}"))
    if not limits:
        raise ConfigError("the encoder states no position limit (max_position_embeddings) and its tokenizer "
                          "no model_max_length; pass max_length (--max-length)")
    return min(limits)


@dataclasses.dataclass
class HFOptions:
    """The sub-word window of a Hugging Face encoder (``TaggerConfig.encoder_options``); ``mcrf train`` flags.

    Unset (``None``) values are decided by the encoder when it is built (``HFEncoder.complete``).
    """

    max_length: Optional[int] = option(None, check=integer(2, optional=True, none_means="the encoder's limit"),
                                       help=(
        "encoder window in sub-words including special tokens (Hugging Face encoders); default: the encoder's "
        "position limit and its tokenizer's model_max_length"))
    stride: Optional[int] = option(None, check=integer(0, optional=True, none_means="max_length // 4"), help=(
        "sub-words of overlap between the windows of a sentence longer than max_length (Hugging Face "
        "encoders; default: max_length // 4)"))

    def __post_init__(self) -> None:
        validate(self)
        if self.max_length is not None and self.stride is not None and self.stride >= self.max_length:
            raise ConfigError(f"expected stride < max_length={self.max_length}, got stride={self.stride}; lower "
                              "--stride or leave it unset (max_length // 4)")


class HFEncoder(Encoder):
    """Any Hugging Face ``AutoModel`` encoder, fine-tuned; each word is read from its first sub-word.

    Sentences longer than ``max_length`` sub-words are cut into overlapping windows and every
    word is read from one window (``mcrf.data.alignment``).

    Args:
        model: the ``AutoModel`` (pooler removed).
        tokenizer: its fast tokenizer.
        max_length: window size in sub-words including special tokens.
        stride: sub-words of overlap between windows.
    """

    kind = "huggingface"
    Options = HFOptions
    files = ("tokenizer",)

    def __init__(self, model: nn.Module, tokenizer: Any, max_length: int, stride: int) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.aligner = SubwordAligner(tokenizer, max_length, stride)

    @classmethod
    def accepts(cls, name: str) -> bool:
        return True  # the registry's last resort: any other name is a model id or path

    @classmethod
    def recommended(cls) -> Dict[str, Any]:
        """The usual fine-tuning recipe (BERT-style NER): small encoder lr with layer decay, faster head."""
        return {"lr": 5e-5, "head_lr": 1e-3, "layer_decay": 0.9, "weight_decay": 0.01, "warmup_ratio": 0.1,
                "max_grad_norm": 1.0, "epochs": 3}

    @staticmethod
    def window(model: nn.Module, tokenizer: Any, name: str, options: HFOptions) -> HFOptions:
        """``options`` with the encoder's limit where ``max_length`` is unset, checked against it.

        Raises:
            ConfigError: ``max_length`` above the encoder's limit, or ``stride`` not below it.
        """
        limit, why = window_limit(model, tokenizer)
        max_length = limit if options.max_length is None else options.max_length
        if max_length > limit:
            raise ConfigError(f"max_length={max_length} exceeds what the encoder {name!r} takes: "
                              f"{limit} sub-words ({why}); pass max_length <= {limit} or leave it unset")
        stride = max_length // 4 if options.stride is None else options.stride
        return dataclasses.replace(options, max_length=max_length, stride=stride)

    def complete(self, config: Any) -> Any:
        window = HFOptions(max_length=self.aligner.max_length, stride=self.aligner.stride)
        return dataclasses.replace(config, encoder_options=dataclasses.asdict(window))

    @classmethod
    def _build(cls, model: nn.Module, tokenizer: Any, config: Any) -> "HFEncoder":
        window = cls.window(model, tokenizer, config.encoder, cls.options(config))
        return cls(model, tokenizer, window.max_length, window.stride)

    @classmethod
    def create(cls, config: Any, train_sentences: Optional[Sequence[Any]] = None) -> "HFEncoder":
        cls.options(config)  # a bad option fails before the (slow) download
        return cls._build(load_encoder(config.encoder), load_tokenizer(config.encoder), config)

    def save(self, directory: Path) -> Dict[str, Any]:
        self.tokenizer.save_pretrained(str(Path(directory) / "tokenizer"))
        return {"encoder_config": self.model.config.to_dict()}

    @classmethod
    def load(cls, config: Any, directory: Path, saved: Mapping[str, Any]) -> "HFEncoder":
        encoder_config = saved.get("encoder_config")
        if not isinstance(encoder_config, dict):
            raise ModelDirError(f"{directory / 'config.json'} has no encoder_config for the Hugging Face encoder "
                                f"{config.encoder!r}; save the model again")
        try:
            tokenizer = load_tokenizer(str(Path(directory) / "tokenizer"))
        except ConfigError as error:
            raise ModelDirError(f"{directory}: {error}") from None
        return cls._build(encoder_from_config(encoder_config), tokenizer, config)

    @classmethod
    def upgrade_state_dict(cls, state: Dict[str, Tensor], format_version: int) -> Dict[str, Tensor]:
        """Format 1 held the ``AutoModel`` itself as ``encoder``; it is ``encoder.model`` now."""
        if format_version >= 2:
            return state
        return {("encoder.model." + k[len("encoder."):] if k.startswith("encoder.") else k): v
                for k, v in state.items()}

    def layer_count(self) -> int:
        """The numbered transformer layers among the trainable parameters (the highest index + 1)."""
        indices = [int(match.group(1)) for name, param in self.named_parameters()
                   if param.requires_grad and (match := _LAYER.search(name))]
        return max(indices) + 1 if indices else 0

    def layer_index(self, name: str) -> int:
        """0 for the embeddings, ``N + 1`` for transformer layer ``N``, ``L + 1`` for the rest (a final norm)."""
        match = _LAYER.search(name)
        if match:
            return int(match.group(1)) + 1
        if "embeddings" in name.split(".")[:2]:
            return 0
        return self.layer_count() + 1

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def featurizer(self) -> Featurizer:
        return self.aligner

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """First-sub-word vectors of each word from its owner window, shape (B, W, H)."""
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if "token_type_ids" in batch:
            inputs["token_type_ids"] = batch["token_type_ids"]
        windows = self.model(**inputs).last_hidden_state  # shape: (N, S, H)
        return gather_words(windows, batch["word_window"], batch["word_position"])  # shape: (B, W, H)
