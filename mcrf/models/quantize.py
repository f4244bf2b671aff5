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
from typing import Dict, Mapping, Optional, Union

import torch
from torch import Tensor, nn

from mcrf.errors import ConfigError

__all__ = ["QUANTIZATIONS", "TokenScaledInt8Linear", "check_quantization", "quantize_module", "is_quantized",
           "int8_weight", "int8_tensors"]

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
        if bias is not None:
            inner.set_weight_bias(inner.weight(), None)  # packs the weight again: from_int8 avoids it
        self.inner = inner
        self.register_buffer("bias", None if bias is None else bias.detach().clone(), persistent=False)
        anchor = torch.zeros(inner.in_features)  # shape: (I,)
        anchor[0], anchor[-1] = 1.0, -1.0  # the kernel's range is then exactly [-1, 1]
        self.register_buffer("anchor", anchor, persistent=False)

    @classmethod
    def from_int8(cls, weight: Tensor, bias: Optional[Tensor]) -> "TokenScaledInt8Linear":
        """The layer of a per-channel ``qint8`` weight (O, I) and a float32 bias (O,), the weight packed once."""
        inner = torch.ao.nn.quantized.dynamic.Linear(weight.shape[1], weight.shape[0], bias_=False, dtype=torch.qint8)
        inner.set_weight_bias(weight, None)
        layer = cls(inner)
        if bias is not None:
            layer.bias = bias.detach().float().clone()
        return layer

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


def int8_weight(weight: Tensor) -> Tensor:
    """``weight`` (O, I) as a ``qint8`` tensor with one symmetric scale per output channel.

    The rule of ``torch.ao.quantization.per_channel_dynamic_qconfig`` (what ``quantize_dynamic``
    with it computes), without building a module per layer.
    """
    observer = torch.ao.quantization.per_channel_dynamic_qconfig.weight()
    observer(weight.detach())
    scale, zero_point = observer.calculate_qparams()
    return torch.quantize_per_channel(weight.detach().float(), scale.double(), zero_point.long(), 0,
                                      torch.qint8)  # shape: (O, I)


def quantize_module(module: nn.Module, quantize: str, weights: Optional[Mapping[str, Tensor]] = None) -> nn.Module:
    """Replace the ``nn.Linear`` layers of ``module`` by ``TokenScaledInt8Linear`` in place.

    Args:
        module: a float32 module on the CPU (the encoder of a tagger).
        quantize: one of ``QUANTIZATIONS``.
        weights: the int8 weights of those layers, as ``int8_tensors`` gave them (a cache); computed
            from the float32 weights when ``None``.

    Returns:
        ``module`` itself, its Linear layers replaced, in eval mode.

    Raises:
        ConfigError: see ``check_quantization``; also when ``module`` has no Linear layer (int8
            would change nothing) or is not on the CPU.
        KeyError, ValueError: ``weights`` lacks a layer or holds one of another shape (a stale cache).
    """
    check_quantization(quantize, next(module.parameters(), torch.empty(0)).device)
    linears = [(name, m) for name, m in module.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(f"quantize={quantize!r}: {type(module).__name__} has no Linear layer, so int8 would change "
                          "nothing; drop quantize for this model")
    with warnings.catch_warnings():
        # torch >= 2.10 flags torch.ao as deprecated (see the module docstring for why it is used)
        # and each int8 weight tensor as a deprecated quantized dtype; the kernels are unchanged.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao")
        warnings.filterwarnings("ignore", message=r".*quantiz.*deprecated", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated")
        layers = {name: TokenScaledInt8Linear.from_int8(
            int8_weight(linear.weight) if weights is None else _stored_weight(weights, name, linear), linear.bias)
            for name, linear in linears}
    for name, layer in layers.items():
        parent, _, child = name.rpartition(".")
        setattr(module.get_submodule(parent) if parent else module, child, layer)
    return module.eval()


def int8_tensors(module: nn.Module) -> Dict[str, Tensor]:
    """The int8 weights of a quantized ``module`` as plain tensors (safetensors can store them).

    For each layer ``NAME``: ``NAME.int8`` (O, I) int8, ``NAME.scale`` (O,) float64 and
    ``NAME.zero_point`` (O,) int64; ``quantize_module(..., weights=...)`` reads them back.
    """
    tensors = {}
    for name, layer in module.named_modules():
        if isinstance(layer, TokenScaledInt8Linear):
            weight = layer.inner.weight()
            tensors.update({f"{name}.int8": weight.int_repr(), f"{name}.scale": weight.q_per_channel_scales(),
                            f"{name}.zero_point": weight.q_per_channel_zero_points()})
    return tensors


def _stored_weight(weights: Mapping[str, Tensor], name: str, linear: nn.Linear) -> Tensor:
    """The ``qint8`` weight of layer ``name`` from ``int8_tensors`` output, checked against the float layer."""
    values, scale, zero_point = (weights[f"{name}.{part}"] for part in ("int8", "scale", "zero_point"))
    out = linear.weight.shape[0]
    if (values.dtype != torch.int8 or tuple(values.shape) != tuple(linear.weight.shape)
            or tuple(scale.shape) != (out,) or tuple(zero_point.shape) != (out,)
            or not bool((torch.isfinite(scale) & (scale > 0)).all())):
        raise ValueError(f"the int8 weights of {name} ({list(values.shape)}, {values.dtype}, with their scales) do "
                         f"not fit the layer {list(linear.weight.shape)}")
    return torch._make_per_channel_quantized_tensor(values, scale.double(), zero_point.long(), 0)  # shape: (O, I)


def is_quantized(module: nn.Module) -> bool:
    """True when ``module`` holds int8 layers (from ``quantize_module``)."""
    return any(isinstance(m, TokenScaledInt8Linear) for m in module.modules())
