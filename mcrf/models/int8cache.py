"""The int8 weights of a saved tagger, computed once and kept beside it (``model.int8.safetensors``).

Quantizing the encoder's Linear layers (``mcrf.models.quantize``) costs about as much as the
rest of loading, and ``mcrf predict --quantize int8`` paid it at every start, so on a short input
the whole process was slower than float32. ``quantize_saved`` reads the int8 weights from
``CACHE_FILE`` in the model folder when that file belongs to the folder's ``model.safetensors``
(its size and modification time are recorded in the cache's metadata), else quantizes and writes
the file atomically for the next load (``mcrf.io.outputs.open_output``). A read-only folder is
fine: the weights are then quantized at each load, as before, and the log says why.

The cache holds plain int8/float64/int64 tensors in safetensors format (never a pickle), and the
same values ``quantize_module`` computes, so predictions are identical with and without it.
Saving a tagger again replaces its whole folder, which drops a stale cache.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Optional

import torch
from torch import nn

from mcrf.errors import ConfigError
from mcrf.io.outputs import open_output
from mcrf.models.quantize import int8_tensors, quantize_module

__all__ = ["CACHE_FILE", "quantize_saved"]

logger = logging.getLogger(__name__)

#: the cache's name in a model folder
CACHE_FILE = "model.int8.safetensors"
#: bumped when the cached values would change (another quantization rule)
_CACHE_VERSION = "1"


def _stamp(weights: Path) -> Dict[str, str]:
    """What identifies the float32 weights a cache was computed from."""
    info = weights.stat()
    return {"mcrf_int8": _CACHE_VERSION, "source_size": str(info.st_size), "source_mtime_ns": str(info.st_mtime_ns)}


def _read(path: Path, stamp: Dict[str, str]) -> Optional[Dict[str, torch.Tensor]]:
    """The cached tensors when ``path`` exists and was computed from the current weights, else ``None``."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            if any((handle.metadata() or {}).get(key) != value for key, value in stamp.items()):
                logger.info("%s was computed from other weights; quantizing again", path)
                return None
            return {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError) as error:
        logger.info("cannot read %s (%s); quantizing again", path, error)
        return None


def _write(path: Path, tensors: Dict[str, torch.Tensor], stamp: Dict[str, str]) -> None:
    """Write the cache atomically; a folder that refuses it is logged, not an error."""
    from safetensors.torch import save

    try:
        with open_output(path, binary=True) as out:
            out.write(save(tensors, metadata=stamp))
    except OSError as error:  # read-only folder, full disk, permissions (OutputError too)
        logger.info("cannot keep the int8 weights in %s (%s); they are quantized again at each load", path, error)
        return
    logger.debug("int8 weights kept in %s", path)


def quantize_saved(encoder: nn.Module, directory: Path, quantize: str) -> nn.Module:
    """Quantize ``encoder`` (loaded from ``directory``) with the folder's cached int8 weights, writing them if absent.

    Args:
        encoder: the float32 encoder of the tagger loaded from ``directory``.
        directory: the model folder (holding ``model.safetensors``).
        quantize: one of ``mcrf.models.quantize.QUANTIZATIONS``.

    Returns:
        ``encoder``, its Linear layers int8.

    Raises:
        ConfigError: see ``mcrf.models.quantize.quantize_module``.
    """
    path = Path(directory) / CACHE_FILE
    stamp = _stamp(Path(directory) / "model.safetensors")
    cached = _read(path, stamp)
    if cached is not None:
        try:
            return quantize_module(encoder, quantize, cached)
        except (KeyError, ValueError) as error:  # checked before any layer is replaced
            if isinstance(error, ConfigError):  # not about the cache: the device or the encoder
                raise
            logger.info("%s does not fit the model (%s); quantizing again", path, error)
    quantize_module(encoder, quantize)
    _write(path, int8_tensors(encoder), stamp)
    return encoder
