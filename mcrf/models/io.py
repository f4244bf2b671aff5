"""Saving and loading taggers: a self-contained directory, written atomically, loaded without pickle.

Layout of a saved tagger directory (format 3)::

    config.json          TaggerConfig fields + "format", "format_version", "encoder_kind" (the
                         encoder class's ``kind``) and "encoder_state" (what the encoder's ``save``
                         returned, e.g. the HF config dict)
    model.safetensors    all weights (encoder, head, crf)
    <encoder files>      written by the encoder: tokenizer/ (Hugging Face), vocab.json (BiLSTM)
    README.md            model card with the evaluation results passed to save
    metrics.json         the same results as JSON (when given)

The encoder is rebuilt by its own ``load`` (no download of the original Hugging Face encoder)
and the weights are read with safetensors, which never unpickles. Format 1 directories (mcrf
before the encoder interface) and format 2 ones (the sub-word window as top-level keys, no
``encoder_kind``) load too (``Encoder.upgrade_config``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Type, Union

import torch

from mcrf.errors import ConfigError, InputNotFound, ModelDirError
from mcrf.io.files import atomic_directory, write_json
from mcrf.models.config import TaggerConfig
from mcrf.models.encoders import encoder_class, encoder_classes
from mcrf.models.int8cache import CACHE_FILE
from mcrf.models.safety import read_model_json, refuse_custom_code
from mcrf.models.weights import check_finite, check_fit, load_weights, stored_tensors

__all__ = ["save_model_dir", "load_model_dir", "FORMAT", "FORMAT_VERSION", "model_files"]

FORMAT = "mcrf-tagger"
FORMAT_VERSION = 3


def model_files() -> frozenset:
    """Names a saved tagger directory may hold (those of every encoder known now, registered ones included)."""
    return frozenset({"config.json", "model.safetensors", "README.md", "metrics.json", CACHE_FILE}
                     | {name for cls in encoder_classes() for name in cls.files})
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def save_model_dir(tagger: Any, directory: Union[str, Path], metrics: Optional[Dict[str, Any]] = None) -> None:
    """Save ``tagger`` into ``directory`` so that an interruption never leaves a broken model.

    Everything is written into a staging sibling first, which then replaces ``directory`` by
    renames (``mcrf.io.files.atomic_directory``).

    Args:
        tagger: the ``mcrf.models.Tagger`` to save.
        directory: target directory; it must not exist or hold only files of a saved tagger.
        metrics: evaluation results for the model card (and ``metrics.json``), e.g.
            ``{"dev": {"f1": 0.91}, "test": {"f1": 0.88}}``.

    Raises:
        ModelDirError: ``directory`` holds other files (they would be lost) or is a file.
    """
    from safetensors.torch import save_model

    from mcrf.models.card import model_card

    target = Path(directory)
    if target.exists():
        if not target.is_dir():
            raise ModelDirError(f"cannot save a tagger to {target}: it is a file; pass a directory path")
        known = model_files()
        foreign = sorted(p.name for p in target.iterdir() if p.name not in known)
        if foreign:
            raise ModelDirError(
                f"{target} holds files that are not part of a saved tagger ({foreign[:5]}); saving replaces the "
                f"whole directory, so save the tagger into its own directory (e.g. {target / 'model'})"
            )
    with atomic_directory(target) as staging:
        encoder_state = tagger.encoder.save(staging)
        write_json(staging / "config.json", {"format": FORMAT, "format_version": FORMAT_VERSION,
                                             **tagger.config.to_dict(), "encoder_kind": type(tagger.encoder).kind,
                                             "encoder_state": encoder_state})
        save_model(tagger, str(staging / "model.safetensors"), metadata={"format": "pt", "mcrf": FORMAT})
        if metrics is not None:
            write_json(staging / "metrics.json", metrics)
        (staging / "README.md").write_text(model_card(tagger.config, metrics), encoding="utf-8")


def _resolve(dir_or_hub_id: Union[str, Path]) -> Path:
    """A local directory, downloading a hub repository when the name is not a local path."""
    path = Path(dir_or_hub_id)
    if path.exists():
        return path
    name = str(dir_or_hub_id)
    if not _HUB_ID.match(name):
        raise InputNotFound(f"no tagger directory at {name}; expected a directory written by "
                            "Tagger.save_pretrained or a hub id like 'user/model'")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name))
    except Exception as error:  # noqa: BLE001 - the hub raises many error types (offline, 404, auth)
        raise InputNotFound(
            f"{name!r} is neither a local directory nor a downloadable hub repository ({type(error).__name__}: "
            f"{error}); pass the path of a directory written by Tagger.save_pretrained"
        ) from error


def _read_config(path: Path) -> Dict[str, Any]:
    """``config.json`` of a model directory, checked to be an mcrf tagger config of a known format."""
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ModelDirError(f"{path} has no config.json; expected a directory written by Tagger.save_pretrained")
    data = read_model_json(config_path)
    if isinstance(data, dict) and data.get("model_type") == "mcrf-token-classification":
        raise ModelDirError(f"{config_path} is a Hugging Face MaskedCRFForTokenClassification folder, not an mcrf "
                            f"tagger; convert it first (mcrf convert {path} NEW_FOLDER) and pass NEW_FOLDER, or load "
                            "it with AutoModelForTokenClassification after `import mcrf.hf`")
    if isinstance(data, dict) and data.get("format") != FORMAT and isinstance(data.get("model_type"), str):
        raise ModelDirError(f"{config_path} is not an mcrf tagger config: it is a Hugging Face model (model_type "
                            f"{data['model_type']!r}); train a tagger on it (mcrf train DATASET --encoder {path}) "
                            "and pass the model folder that writes")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelDirError(f"{config_path} is not an mcrf tagger config (expected \"format\": \"{FORMAT}\"); "
                            "pass a directory written by Tagger.save_pretrained")
    version = data.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelDirError(f"{config_path} has a malformed format_version {version!r}; expected an integer from 1 "
                            f"to {FORMAT_VERSION} (save the model again)")
    if version > FORMAT_VERSION:
        raise ModelDirError(f"{config_path} has format_version {version}, newer than this mcrf reads "
                            f"({FORMAT_VERSION}); upgrade mcrf")
    return data


def _build(build: Callable[[], Any], config_path: Path) -> Any:
    """``build()``, a setting it refuses (an encoder option, a window) reported as the model file's fault."""
    try:
        return build()
    except ConfigError as error:
        raise ModelDirError(f"{config_path} is not a valid tagger config: {error}; save the model again") from None


def load_model_dir(cls: Type[Any], dir_or_hub_id: Union[str, Path],
                   device: Union[str, torch.device, None] = None, quantize: Optional[str] = None) -> Any:
    """Rebuild a tagger from a saved directory (or hub id) and load its weights with safetensors.

    The folder is refused if it asks to run code (``mcrf.models.safety``); the tagger is built
    first on the ``meta`` device and checked against the weight file's header
    (``mcrf.models.weights``), so nothing is allocated for a config that does not fit its weights.

    Args:
        cls: the ``mcrf.models.Tagger`` class (passed in: this module is below the tagger's).
        dir_or_hub_id: a directory written by ``save_model_dir`` or a hub repository id.
        device: where to put the model (default CPU).
        quantize: ``"int8"`` quantizes the encoder's Linear layers, with the int8 weights kept in the
            folder after the first time (``mcrf.models.int8cache``); ``None`` keeps float32.

    Returns:
        The tagger in eval mode.

    Raises:
        InputNotFound: no such directory (nor a downloadable hub repository).
        ModelDirError: the directory is incomplete, corrupt, not an mcrf tagger, or asks to run code;
            one line naming the file (and the tensor).
    """
    from safetensors.torch import load_file

    path = _resolve(dir_or_hub_id)
    data = _read_config(path)
    refuse_custom_code(path)  # before transformers reads any file of the folder
    config_path = path / "config.json"
    version = data.pop("format_version", 1)
    data.pop("format")
    name = data.get("encoder")
    if not isinstance(name, str) or not name:
        raise ModelDirError(f"{config_path} names no encoder; save the model again")
    kind = encoder_class(name)
    saved_kind = data.pop("encoder_kind", kind.kind)
    if saved_kind != kind.kind:
        raise ModelDirError(
            f"{path} holds a {saved_kind!r} encoder named {name!r}, which no encoder registered here handles "
            f"({name!r} means a {kind.kind!r} encoder in this process); import the package defining it and call "
            f"mcrf.models.encoders.register_encoder({name!r}, ItsEncoderClass) before loading")
    if version < FORMAT_VERSION:
        data, encoder_state = kind.upgrade_config(data, version)
    else:
        encoder_state = data.pop("encoder_state", None)
    if not isinstance(encoder_state, dict):
        raise ModelDirError(f"{config_path} has no encoder_state object; save the model again")
    config = _build(lambda: TaggerConfig.from_dict(data), config_path)
    for name in ("model.safetensors",) + kind.files:
        if not (path / name).exists():
            raise ModelDirError(f"{path} lacks {name}; the tagger directory is incomplete, save it again")
    weights = path / "model.safetensors"
    stored = stored_tensors(weights)

    def build() -> Any:
        return cls(config, kind.load(config, path, encoder_state))

    def rename(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:  # weight names changed after format 1
        return state if version >= 2 else kind.upgrade_state_dict(state, version)

    with torch.device("meta"):  # shapes only: a config asking for terabytes allocates nothing
        skeleton = _build(build, config_path)
    check_fit(skeleton, stored, weights, config_path, rename)
    del skeleton
    tagger = _build(build, config_path)
    load_weights(tagger, weights, None if version >= 2 else lambda: rename(load_file(str(weights))))
    check_finite(tagger, weights)
    if quantize is not None:
        from mcrf.models.int8cache import quantize_saved

        quantize_saved(tagger.encoder, path, quantize)
    return tagger.to(device if device is not None else "cpu").eval()
