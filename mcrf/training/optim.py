"""AdamW parameter groups with layer-wise learning-rate decay, and the warmup/decay schedule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from mcrf.errors import ConfigError
from mcrf.fields import number, option

__all__ = ["OptimConfig", "param_groups", "build_optimizer", "linear_schedule"]

_RECOMMENDED = "default: the encoder's recommendation"


@dataclass
class OptimConfig:
    """The optimisation settings of a run. ``None`` means the encoder's recommendation
    (``Encoder.recommended``), filled in by ``TrainConfig``."""

    lr: Optional[float] = option(None, check=number(0, 1, low_open=True, optional=True), help=(
        f"peak learning rate of the encoder (its top layer) ({_RECOMMENDED})"))
    head_lr: Optional[float] = option(None, check=number(0, 1, low_open=True, optional=True), help=(
        f"peak learning rate of the tag-score layer and the CRF ({_RECOMMENDED})"))
    layer_decay: Optional[float] = option(None, check=number(0, 1, low_open=True, optional=True), help=(
        "layer-wise learning-rate decay: encoder layer N of L (0-based) trains at lr * layer_decay ** (L-1-N), "
        f"the embeddings at lr * layer_decay ** L; 1 disables it ({_RECOMMENDED})"))
    weight_decay: Optional[float] = option(None, check=number(0, 1, optional=True), help=(
        f"AdamW weight decay, never on biases, norms or CRF scores ({_RECOMMENDED})"))
    warmup_ratio: Optional[float] = option(None, check=number(0, 1, high_open=True, optional=True), help=(
        f"share of the steps with linear warmup, then linear decay to 0 ({_RECOMMENDED})"))
    max_grad_norm: Optional[float] = option(None, check=number(0, optional=True), help=(
        f"gradient clipping norm, 0 disables clipping ({_RECOMMENDED})"))


def _no_decay(name: str, param: nn.Parameter) -> bool:
    """Biases, normalisation weights and other vectors are not weight-decayed."""
    lowered = name.lower()
    return param.ndim < 2 or "norm" in lowered or lowered.endswith("bias")


def param_groups(
    model: nn.Module, *, lr: float, head_lr: float, layer_decay: float = 1.0, weight_decay: float = 0.0
) -> List[Dict]:
    """AdamW parameter groups for a ``Tagger``.

    Encoder parameters (``model.encoder``, an ``mcrf.models.encoders.Encoder``) get
    ``lr * layer_decay ** max(0, L - depth)``, where the encoder says how many layers ``L`` it
    stacks (``Encoder.layer_count``) and the depth of each parameter (``Encoder.layer_index``):
    the top layer ``L-1`` and non-layer encoder parameters (final norm) train at ``lr``, each
    layer below one factor slower, the embeddings at ``lr * layer_decay ** L``. Everything else
    (head, CRF) trains at ``head_lr``. Biases/norm weights/vectors and the CRF get no weight
    decay. An encoder without a layer stack (the BiLSTM) trains all at ``lr``. Frozen parameters
    are skipped.

    Returns:
        A list of dicts with ``params``, ``lr``, ``weight_decay`` and a descriptive ``name``;
        empty groups are omitted. Each group also stores ``initial_lr`` for the scheduler.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    encoder = getattr(model, "encoder", None)
    num_layers = encoder.layer_count() if encoder is not None else 0
    groups: Dict[Tuple[str, bool], Dict] = {}
    for name, param in named:
        if name.startswith("encoder."):
            depth = encoder.layer_index(name[len("encoder."):])
            # without numbered layers (BiLSTM) there is nothing to decay over
            group_lr = lr * layer_decay ** max(0, num_layers - depth) if num_layers else lr
            key = f"encoder.depth{depth}"
        else:
            group_lr, key = head_lr, "head"
        decay = not (_no_decay(name, param) or name.startswith("crf."))
        group = groups.setdefault((key, decay), {
            "name": f"{key}{'' if decay else '.no_decay'}",
            "params": [],
            "lr": group_lr,
            "initial_lr": group_lr,
            "weight_decay": weight_decay if decay else 0.0,
        })
        group["params"].append(param)
    return list(groups.values())


def build_optimizer(
    model: nn.Module, *, lr: float, head_lr: float, layer_decay: float = 1.0, weight_decay: float = 0.0
) -> torch.optim.AdamW:
    """``torch.optim.AdamW`` over ``param_groups`` (see there for the learning rates)."""
    groups = param_groups(model, lr=lr, head_lr=head_lr, layer_decay=layer_decay, weight_decay=weight_decay)
    if not groups:
        raise ConfigError("expected a model with trainable parameters, got none (all frozen?)")
    return torch.optim.AdamW(groups, lr=lr)


def linear_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: Optional[int] = None,
    warmup_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup from 0 to each group's lr, then linear decay to 0 at ``total_steps``.

    Args:
        optimizer: the optimizer (its groups' ``lr`` are the peaks).
        total_steps: number of optimizer steps of the whole run (>= 1).
        warmup_steps: warmup length; default ``round(warmup_ratio * total_steps)``.
        warmup_ratio: used when ``warmup_steps`` is None.
    """
    if total_steps < 1:
        raise ValueError(f"expected total_steps >= 1, got {total_steps}")
    warmup = round(warmup_ratio * total_steps) if warmup_steps is None else warmup_steps

    # A plain closure on purpose: LambdaLR.state_dict() saves callable *objects* (and would
    # restore an old total_steps on resume) but not functions.
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
