"""``mcrf train``'s optimizer recipe for ``MaskedCRFForTokenClassification``, to hand to ``Trainer(optimizers=...)``.

The tag-score layer and the CRF get their own learning rate (``head_lr``) and the backbone layer-wise
learning-rate decay, exactly as ``mcrf.training.optim.param_groups`` builds them for a tagger; the
backbone's layers are counted the way ``mcrf.models.encoders.hf.HFEncoder`` counts them.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Tuple

import torch
from torch import nn

from mcrf.models.encoders.hf import HFEncoder
from mcrf.training.optim import param_groups

__all__ = ["optimizer_groups", "build_optimizer"]


class _LayerStack:
    """What ``param_groups`` asks of a tagger, answered for the HF model: its parameters and its
    encoder's layer stack (``layer_count``/``layer_index``, HFEncoder's rules over the backbone)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.encoder = self

    def named_parameters(self) -> Iterator[Tuple[str, nn.Parameter]]:
        return self.model.named_parameters()

    def layer_count(self) -> int:
        return HFEncoder.layer_count(self.model.encoder)

    def layer_index(self, name: str) -> int:
        return HFEncoder.layer_index(self, name)


def optimizer_groups(model: nn.Module, *, lr: float, head_lr: float, layer_decay: float = 1.0,
                     weight_decay: float = 0.0) -> List[Dict[str, Any]]:
    """AdamW parameter groups of a ``MaskedCRFForTokenClassification`` (see ``mcrf.training.optim.param_groups``).

    Args:
        model: the model (its backbone is ``model.encoder``).
        lr: peak learning rate of the backbone's top layer; layer ``N`` of ``L`` gets
            ``lr * layer_decay ** (L - 1 - N)``, the embeddings ``lr * layer_decay ** L``.
        head_lr: peak learning rate of ``classifier`` and ``crf``.
        layer_decay: 1 disables the decay.
        weight_decay: AdamW weight decay (never on biases, norms or CRF scores).
    """
    return param_groups(_LayerStack(model), lr=lr, head_lr=head_lr, layer_decay=layer_decay,
                        weight_decay=weight_decay)


def build_optimizer(model: nn.Module, **kwargs: Any) -> torch.optim.AdamW:
    """``torch.optim.AdamW`` over ``optimizer_groups(model, **kwargs)``; pass it as ``Trainer(optimizers=(it, None))``
    and the Trainer adds its own warmup/decay schedule."""
    groups = optimizer_groups(model, **kwargs)
    return torch.optim.AdamW(groups, lr=groups[0]["lr"])
