"""Checking a saved tagger's weights against its config before and after they are read.

``mcrf.models.io.load_model_dir`` builds the tagger twice: first on torch's ``meta`` device
(shapes only, no memory), which ``check_fit`` compares with the header of ``model.safetensors``
(read without reading the tensors), and only then for real. So a ``config.json`` asking for a
terabyte-sized layer, weights of another shape or of an integer type are refused by name before
anything is allocated; ``load_weights`` reads the tensors with safetensors (never a pickle) and
``check_finite`` refuses NaN or infinite parameters. Every refusal is one ``ModelDirError`` line
naming the file and the tensor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from mcrf.errors import ModelDirError

__all__ = ["StoredTensor", "stored_tensors", "check_fit", "load_weights", "check_finite"]

#: ``(shape, dtype)`` of one tensor in ``model.safetensors``, as its header says
StoredTensor = Tuple[Tuple[int, ...], torch.dtype]
#: a model may exceed its weight file by this factor plus ``_SLACK`` (tied weights stored once, buffers)
_FACTOR, _SLACK = 2, 256 * 2**20


def _damaged(weights: Path, error: Exception) -> ModelDirError:
    text = " ".join(str(error).split())
    return ModelDirError(f"cannot read {weights} ({type(error).__name__}: {text[:200]}); the file is damaged, "
                         "save the model again")


def stored_tensors(weights: Path) -> Dict[str, StoredTensor]:
    """Name -> ``(shape, dtype)`` of every tensor in a safetensors file, from its header only.

    Raises:
        ModelDirError: the file cannot be read or its header is damaged.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt") as handle:
            return {name: (tuple(handle.get_slice(name).get_shape()), _dtype(handle.get_slice(name).get_dtype()))
                    for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:  # ValueError: a dtype name torch lacks
        raise _damaged(weights, error) from None


def _dtype(name: str) -> torch.dtype:
    """The torch dtype of a safetensors dtype name (``F32``, ``I64``, ...)."""
    table = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
             "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
             "BOOL": torch.bool}
    if name not in table:
        raise ValueError(f"tensor type {name}")
    return table[name]


def _size(nbytes: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"


def check_fit(skeleton: nn.Module, stored: Dict[str, StoredTensor], weights: Path, config_path: Path,
              rename: Callable[[Dict[str, torch.Tensor]], Dict[str, torch.Tensor]] = lambda state: state) -> None:
    """Refuse weights that cannot belong to the model ``config.json`` describes, before it is allocated.

    Args:
        skeleton: the tagger built on the ``meta`` device from ``config_path``.
        stored: ``stored_tensors(weights)``.
        weights: the ``model.safetensors`` path (for messages).
        config_path: the ``config.json`` path (for messages).
        rename: maps stored names to the model's (an encoder's ``upgrade_state_dict`` for old formats).

    Raises:
        ModelDirError: the model would be far larger than its weight file, a tensor has another shape,
            or a floating-point parameter is stored as integers, naming the tensor.
    """
    model_bytes = sum(t.numel() * t.element_size() for t in (*skeleton.parameters(), *skeleton.buffers()))
    file_bytes = weights.stat().st_size
    if model_bytes > _FACTOR * file_bytes + _SLACK:
        raise ModelDirError(f"{config_path} describes a model of {_size(model_bytes)}, but {weights} holds "
                            f"{_size(file_bytes)}; the config does not belong to these weights (check sizes such as "
                            "encoder_options), save the model again")
    stand_ins = rename({name: torch.empty(shape, dtype=dtype, device="meta")
                        for name, (shape, dtype) in stored.items()})
    expected = skeleton.state_dict()
    for name, tensor in stand_ins.items():
        want = expected.get(name)
        if want is None:
            continue  # an unexpected tensor: load_weights names it
        if tuple(tensor.shape) != tuple(want.shape):
            raise ModelDirError(f"{weights}: tensor {name} has shape {list(tensor.shape)}, but {config_path.name} "
                                f"makes it {list(want.shape)}; the weights do not fit their config, save the model "
                                "again")
        if want.is_floating_point() and not tensor.is_floating_point():
            raise ModelDirError(f"{weights}: tensor {name} holds {str(tensor.dtype).replace('torch.', '')} values, "
                                f"expected floating-point weights ({str(want.dtype).replace('torch.', '')}); save "
                                "the model again")


def load_weights(tagger: nn.Module, weights: Path,
                 state: Optional[Callable[[], Dict[str, torch.Tensor]]] = None) -> None:
    """Read ``weights`` into ``tagger`` with safetensors; every tensor of the model must be there, and no other.

    Args:
        tagger: the tagger (after ``check_fit``, so shapes agree).
        weights: the ``model.safetensors`` path.
        state: for old formats, a function returning the renamed state dict to load instead of the file.

    Raises:
        ModelDirError: the file is damaged, or tensors are missing or unexpected (named).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    try:
        if state is None:  # load_model handles tensors shared inside the encoder (stored once)
            missing, unexpected = load_model(tagger, str(weights), strict=False)
        else:
            missing, unexpected = tagger.load_state_dict(state(), strict=False)
    except (SafetensorError, OSError) as error:
        raise _damaged(weights, error) from None
    for kind, names in (("lacks", missing), ("has unexpected", unexpected)):
        if names:
            listed = ", ".join(sorted(names)[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            raise ModelDirError(f"{weights} {kind} tensor(s) {listed}; the weights do not fit their config.json, "
                                "save the model again")


def check_finite(tagger: nn.Module, weights: Path) -> None:
    """Refuse NaN or infinite parameters, naming the first such tensor.

    Raises:
        ModelDirError: a parameter holds a NaN or an infinity.
    """
    # a sum is NaN or infinite when an element is (13x cheaper than isfinite().all() on MiniLM); only then, or
    # when finite values overflow the sum, are the elements themselves checked
    bad: List[str] = [name for name, parameter in tagger.named_parameters()
                      if parameter.is_floating_point() and not bool(torch.isfinite(parameter.sum()))
                      and not bool(torch.isfinite(parameter).all())]
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise ModelDirError(f"{weights}: tensor {bad[0]}{more} holds NaN or infinite values; the model is broken "
                            "(training diverged or the file was altered), use another checkpoint or train again")
