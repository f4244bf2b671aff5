"""Int8 CPU inference: dynamic quantization of an encoder's ``Linear`` layers, one scale per token.

``quantize_module(encoder, "int8")`` replaces every ``nn.Linear`` inside the module by a
``TokenScaledInt8Linear``: int8 weights with one scale per output channel, and int8 activations
with one scale per token (row), products accumulated in int32 by the fbgemm/x86 (or qnnpack)
kernels of ``torch.ao.nn.quantized.dynamic.Linear``, results back in float32. Everything outside
those layers (embeddings, LayerNorm, attention products, the tag head, the CRF) stays float32.

Why one scale per token: the dynamic kernel scales its int8 input by the range of the *whole*
batch, so a sentence's scores depended on its neighbours and on the padding (on CoNLL-2003 test,
277 of 3,453 sentences got other tags at batch size 1 than at 32, and test F1 fell 0.40 points
below float32 instead of 0.08). Each row is divided by its own largest magnitude before the
kernel and multiplied back after it; one constant row holding +1 and -1 pins the kernel's range
to [-1, 1], so every token is quantized with the same grid whatever else is in the batch.

Why ``torch.ao.quantization.quantize_dynamic`` although torch marks it deprecated in favour of
torchao: on the CPU in eager mode it is the fast path. Measured on all-MiniLM-L6-v2 over 1,000
CoNLL-2003 test sentences (batch 32, 2 threads, interleaved): its kernels run the encoder about
3x faster than float32, torchao 0.18's ``Int8DynamicActivationInt8WeightConfig`` 1.4x, and
``torch._int_mm`` on the CPU is slower than float32. When torch removes ``torch.ao``,
``check_quantization`` says so instead of failing later.

The quantized kernels run on the CPU only: any other device is refused with a ``ConfigError``.
A quantized tagger is for prediction; it cannot be trained or saved (save the float32 model and
quantize it when loading). Encoders without ``Linear`` layers (the BiLSTM) are refused: int8
would change nothing there.
"""

from __future__ import annotations

import warnings
from typing import Optional, Union

import torch
from torch import Tensor, nn

from mcrf.errors import ConfigError

__all__ = ["QUANTIZATIONS", "TokenScaledInt8Linear", "check_quantization", "quantize_module", "is_quantized"]

#: The quantization schemes ``Tagger.from_pretrained(..., quantize=...)`` and ``mcrf predict --quantize`` accept.
QUANTIZATIONS = ("int8",)


class TokenScaledInt8Linear(nn.Module):
    """A dynamically quantized ``Linear`` whose int8 activations are scaled per token, not per batch.

    Args:
        inner: the ``torch.ao.nn.quantized.dynamic.Linear`` to run (its bias is taken out and
            added in float32 after the per-token rescaling).
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        bias = inner.bias()
        inner.set_weight_bias(inner.weight(), None)
        self.inner = inner
        self.register_buffer("bias", None if bias is None else bias.detach().clone(), persistent=False)
        anchor = torch.zeros(inner.in_features)  # shape: (I,)
        anchor[0], anchor[-1] = 1.0, -1.0  # the kernel's range is then exactly [-1, 1]
        self.register_buffer("anchor", anchor, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (..., I) float32 -> (..., O) float32."""
        rows = x.reshape(-1, x.shape[-1])  # shape: (M, I)
        count = rows.shape[0]
        scale = rows.abs().amax(dim=1, keepdim=True).clamp_min_(torch.finfo(x.dtype).tiny)  # shape: (M, 1)
        unit = torch.empty(count + 1, rows.shape[1], dtype=x.dtype)  # shape: (M + 1, I)
        torch.div(rows, scale, out=unit[:count])
        unit[count] = self.anchor
        out = self.inner(unit)[:count]  # shape: (M, O)
        out = torch.addcmul(self.bias, out, scale) if self.bias is not None else out * scale  # shape: (M, O)
        return out.reshape(*x.shape[:-1], out.shape[-1])  # shape: (..., O)

    def extra_repr(self) -> str:
        return f"in_features={self.inner.in_features}, out_features={self.inner.out_features}, per-token int8"


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
    """Replace the ``nn.Linear`` layers of ``module`` by ``TokenScaledInt8Linear`` in place.

    Args:
        module: a float32 module on the CPU (the encoder of a tagger).
        quantize: one of ``QUANTIZATIONS``.

    Returns:
        ``module`` itself, its Linear layers replaced, in eval mode.

    Raises:
        ConfigError: see ``check_quantization``; also when ``module`` has no Linear layer (int8
            would change nothing) or is not on the CPU.
    """
    check_quantization(quantize, next(module.parameters(), torch.empty(0)).device)
    if not any(isinstance(m, nn.Linear) for m in module.modules()):
        raise ConfigError(f"quantize={quantize!r}: {type(module).__name__} has no Linear layer, so int8 would change "
                          "nothing; drop quantize for this model")
    with warnings.catch_warnings():
        # torch >= 2.10 flags torch.ao as deprecated (see the module docstring for why it is used)
        # and each int8 weight tensor as a deprecated quantized dtype; the kernels are unchanged.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao")
        warnings.filterwarnings("ignore", message=r".*quantiz.*deprecated", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated")
        per_channel = {nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
        torch.ao.quantization.quantize_dynamic(module.eval(), per_channel, dtype=torch.qint8, inplace=True)
        _scale_per_token(module)
    return module


def _scale_per_token(module: nn.Module) -> None:
    """Wrap each dynamically quantized Linear below ``module`` in ``TokenScaledInt8Linear``."""
    for name, child in module.named_children():
        if isinstance(child, torch.ao.nn.quantized.dynamic.Linear):
            setattr(module, name, TokenScaledInt8Linear(child))
        else:
            _scale_per_token(child)


def is_quantized(module: nn.Module) -> bool:
    """True when ``module`` holds int8 layers (from ``quantize_module``)."""
    return any(isinstance(m, TokenScaledInt8Linear) for m in module.modules())
