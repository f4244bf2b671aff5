"""Int8 CPU inference: dynamic quantization of an encoder's ``Linear`` (and ``LSTM``) layers.

``quantize_module(encoder, "int8")`` replaces every ``nn.Linear`` and ``nn.LSTM`` inside the
module by its dynamically quantized counterpart (``torch.ao.nn.quantized.dynamic``): weights are
stored as int8 with one scale per output channel, activations are quantized per call from their
observed range, the products accumulate in int32 and come back as float32. Everything outside
those layers (embeddings, LayerNorm, the tag head, the CRF) stays float32.

Why ``torch.ao.quantization.quantize_dynamic`` although torch marks it deprecated in favour of
torchao: on the CPU in eager mode it is the fast path. Measured on all-MiniLM-L6-v2 over 1,000
CoNLL-2003 test sentences (batch 32, 2 threads, interleaved): its fbgemm/x86 kernels run the
encoder 3.2-3.4x faster than float32, torchao 0.18's ``Int8DynamicActivationInt8WeightConfig``
1.4x. When torch removes ``torch.ao``, ``check_quantization`` says so instead of failing later.

Determinism: for a given model, quantization and batch the int8 products are exact integers, so
the same input gives the same tags and confidences on every run. The activation scale is taken
per call over the whole batch (padding included), so a sentence tagged in a different batch (a
different ``batch_size`` or neighbours) can get slightly different scores.

The quantized kernels run on the CPU only: any other device is refused with a ``ConfigError``.
A quantized tagger is for prediction; it cannot be trained or saved (save the float32 model and
quantize it when loading).
"""

from __future__ import annotations

import warnings
from typing import Optional, Union

import torch
from torch import nn

from mcrf.errors import ConfigError

__all__ = ["QUANTIZATIONS", "check_quantization", "quantize_module", "is_quantized"]

#: The quantization schemes ``Tagger.from_pretrained(..., quantize=...)`` and ``mcrf predict --quantize`` accept.
QUANTIZATIONS = ("int8",)
_LAYERS = (nn.Linear, nn.LSTM)


def check_quantization(quantize: Optional[str], device: Union[str, torch.device, None] = None) -> None:
    """Check that ``quantize`` is a known scheme this torch build can run on ``device``.

    Args:
        quantize: ``None`` (no quantization: always fine) or one of ``QUANTIZATIONS``.
        device: where the model will run; ``None`` means the CPU.

    Raises:
        ConfigError: an unknown scheme, a device other than the CPU, or a torch build without
            quantized CPU kernels; the message names the fix.
    """
    if quantize is None:
        return
    if quantize not in QUANTIZATIONS:
        raise ConfigError(f"unknown quantization {quantize!r}; expected one of {', '.join(QUANTIZATIONS)} "
                          "(or none for float32)")
    kind = torch.device(device).type if device is not None else "cpu"
    if kind != "cpu":
        raise ConfigError(f"quantize={quantize!r} runs on the CPU only (int8 dynamic quantization has no {kind} "
                          f"kernels), got device {str(device)!r}; pass device cpu, or drop quantize to run "
                          f"float32 on {kind}")
    engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    if not engines or not hasattr(torch.ao.quantization, "quantize_dynamic"):
        raise ConfigError(f"this torch build ({torch.__version__}) has no int8 dynamic quantization for the CPU "
                          f"(quantized engines: {torch.backends.quantized.supported_engines}); install a CPU "
                          "build of torch with fbgemm/x86 or qnnpack, or drop quantize")


def quantize_module(module: nn.Module, quantize: str) -> nn.Module:
    """Dynamically quantize the ``nn.Linear`` and ``nn.LSTM`` layers of ``module`` in place.

    Args:
        module: a float32 module on the CPU (the encoder of a tagger).
        quantize: one of ``QUANTIZATIONS``.

    Returns:
        ``module`` itself, its layers replaced, in eval mode.

    Raises:
        ConfigError: see ``check_quantization``; also when ``module`` has no layer to quantize
            (int8 would change nothing) or is not on the CPU.
    """
    check_quantization(quantize, next(module.parameters(), torch.empty(0)).device)
    if not any(isinstance(m, _LAYERS) for m in module.modules()):
        raise ConfigError(f"quantize={quantize!r}: {type(module).__name__} has no Linear or LSTM layer, so int8 "
                          "would change nothing; drop quantize for this model")
    spec = {layer: torch.ao.quantization.per_channel_dynamic_qconfig for layer in _LAYERS}
    with warnings.catch_warnings():
        # torch >= 2.10 flags torch.ao as deprecated (see the module docstring for why it is used)
        # and each int8 weight tensor as a deprecated quantized dtype; the kernels are unchanged.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao")
        warnings.filterwarnings("ignore", message=r".*quantiz.*deprecated", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated")
        torch.ao.quantization.quantize_dynamic(module.eval(), spec, dtype=torch.qint8, inplace=True)
    return module


def is_quantized(module: nn.Module) -> bool:
    """True when ``module`` holds dynamically quantized layers (from ``quantize_module``)."""
    return any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in module.modules())
