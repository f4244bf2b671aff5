"""Saving and loading taggers: a self-contained directory, written atomically, loaded without pickle.

Layout of a saved tagger directory::

    config.json          TaggerConfig fields + "format" + "encoder_config" (HF config dict or null)
    model.safetensors    all weights (encoder, head, crf)
    tokenizer/           HF tokenizer files (HF encoders)
    vocab.json           word/char vocabularies (BiLSTM)
    README.md            model card with the evaluation results passed to save
    metrics.json         the same results as JSON (when given)

The HF encoder is rebuilt from ``encoder_config`` (no download of the original encoder) and the
weights are read with safetensors, which never unpickles.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Type, Union

import torch

from mcrf.models.config import TaggerConfig
from mcrf.outputs import TEMP_SUFFIX, apply_umask, clean_temporaries, temporary_prefix

if TYPE_CHECKING:  # pragma: no cover
    from mcrf.models.tagger import Tagger

__all__ = ["save_tagger", "load_tagger", "FORMAT", "MODEL_FILES"]

FORMAT = "mcrf-tagger"
FORMAT_VERSION = 1
MODEL_FILES = frozenset({"config.json", "model.safetensors", "tokenizer", "vocab.json", "README.md", "metrics.json"})
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _plain(value: Any) -> Any:
    """JSON fallback for numpy/torch scalars (``.item()``); anything else is an error."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON; pass metrics as numbers, strings, lists, dicts")


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False, default=_plain)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def save_tagger(tagger: "Tagger", directory: Union[str, Path], metrics: Optional[Dict[str, Any]] = None) -> None:
    """Save ``tagger`` into ``directory`` so that an interruption never leaves a broken model.

    Everything is written into a temporary sibling directory first, which then replaces
    ``directory`` by renames (the old copy is removed only after the new one is in place).

    Args:
        tagger: the tagger to save.
        directory: target directory; it must not exist or hold only files of a saved tagger.
        metrics: evaluation results for the model card (and ``metrics.json``), e.g.
            ``{"dev": {"f1": 0.91}, "test": {"f1": 0.88}}``.

    Raises:
        ValueError: when ``directory`` holds other files (they would be lost) or is a file.
    """
    from safetensors.torch import save_model

    from mcrf.models.card import model_card

    target = Path(directory)
    if target.exists():
        if not target.is_dir():
            raise ValueError(f"cannot save a tagger to {target}: it is a file; pass a directory path")
        foreign = sorted(p.name for p in target.iterdir() if p.name not in MODEL_FILES)
        if foreign:
            raise ValueError(
                f"{target} holds files that are not part of a saved tagger ({foreign[:5]}); saving replaces the "
                f"whole directory, so save the tagger into its own directory (e.g. {target / 'model'})"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_temporaries(target.parent)  # left by a save that was killed
    staging = Path(tempfile.mkdtemp(prefix=temporary_prefix(target.name), suffix=TEMP_SUFFIX, dir=target.parent))
    try:
        config = tagger.config.to_dict()
        encoder_config = None if tagger.config.is_bilstm else tagger.encoder.config.to_dict()
        _write_json(staging / "config.json", {"format": FORMAT, "format_version": FORMAT_VERSION, **config,
                                              "encoder_config": encoder_config})
        if tagger.config.is_bilstm:
            _write_json(staging / "vocab.json", tagger.encoder.vocab.to_dict())
        else:
            tagger.tokenizer.save_pretrained(str(staging / "tokenizer"))
        save_model(tagger, str(staging / "model.safetensors"), metadata={"format": "pt", "mcrf": FORMAT})
        if metrics is not None:
            _write_json(staging / "metrics.json", metrics)
        (staging / "README.md").write_text(model_card(tagger.config, metrics), encoding="utf-8")
        apply_umask(staging)  # readable by others as the umask says (mkdtemp and safetensors make 0700/0600)
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=temporary_prefix(target.name), suffix=TEMP_SUFFIX,
                                            dir=target.parent))
            os.replace(target, retired / "model")
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _resolve(dir_or_hub_id: Union[str, Path]) -> Path:
    """A local directory, downloading a hub repository when the name is not a local path."""
    path = Path(dir_or_hub_id)
    if path.exists():
        return path
    name = str(dir_or_hub_id)
    if not _HUB_ID.match(name):
        raise FileNotFoundError(f"no tagger directory at {name}; expected a directory written by "
                                "Tagger.save_pretrained or a hub id like 'user/model'")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name))
    except Exception as error:  # the hub raises many error types (offline, 404, auth)
        raise FileNotFoundError(
            f"{name!r} is neither a local directory nor a downloadable hub repository ({type(error).__name__}: "
            f"{error}); pass the path of a directory written by Tagger.save_pretrained"
        ) from error


def load_tagger(cls: Type["Tagger"], dir_or_hub_id: Union[str, Path],
                device: Union[str, torch.device, None] = None) -> "Tagger":
    """Rebuild a tagger from a saved directory (or hub id) and load its weights with safetensors.

    Args:
        cls: the ``Tagger`` class.
        dir_or_hub_id: a directory written by ``save_tagger`` or a hub repository id.
        device: where to put the model (default CPU).

    Returns:
        The tagger in eval mode.

    Raises:
        FileNotFoundError: when the directory or one of its files is missing.
        ValueError: when ``config.json`` is not an mcrf tagger config.
    """
    from safetensors.torch import load_model

    from mcrf.models.bilstm import BiLSTMVocab
    from mcrf.models.tagger import _bilstm_encoder

    path = _resolve(dir_or_hub_id)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{path} has no config.json; expected a directory written by Tagger.save_pretrained")
    data = json.loads(config_path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{config_path} is not an mcrf tagger config (expected \"format\": \"{FORMAT}\"); "
                         "pass a directory written by Tagger.save_pretrained")
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{config_path} has format_version {data['format_version']}, newer than this mcrf "
                         f"reads ({FORMAT_VERSION}); upgrade mcrf")
    encoder_config = data.pop("encoder_config", None)
    for key in ("format", "format_version"):
        data.pop(key, None)
    config = TaggerConfig.from_dict(data)
    for name in ("model.safetensors",) + (("vocab.json",) if config.is_bilstm else ("tokenizer",)):
        if not (path / name).exists():
            raise FileNotFoundError(f"{path} lacks {name}; the tagger directory is incomplete, save it again")
    if config.is_bilstm:
        vocab = BiLSTMVocab.from_dict(json.loads((path / "vocab.json").read_text(encoding="utf-8")))
        tagger = cls(config, _bilstm_encoder(config, vocab))
    else:
        from mcrf.models.hf_encoder import encoder_from_config, load_tokenizer

        if not isinstance(encoder_config, dict):
            raise ValueError(f"{config_path} has no encoder_config for HF encoder {config.encoder!r}; save it again")
        tagger = cls(config, encoder_from_config(encoder_config), load_tokenizer(str(path / "tokenizer")))
    load_model(tagger, str(path / "model.safetensors"), strict=True)
    return tagger.to(device if device is not None else "cpu").eval()
