"""AdamW parameter groups with layer-wise learning-rate decay, and the warmup/decay schedule."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from mcrf.errors import ConfigError
from mcrf.fields import number, option

__all__ = ["OptimConfig", "param_groups", "build_optimizer", "linear_schedule", "encoder_depth"]

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

# ``encoder.encoder.layer.3.``, ``encoder.transformer.layer.3.`` (DistilBERT), ``encoder.layers.3.``
_LAYER = re.compile(r"^encoder\..*?\blayers?\.(\d+)\.")


def _no_decay(name: str, param: nn.Parameter) -> bool:
    """Biases, normalisation weights and other vectors are not weight-decayed."""
    lowered = name.lower()
    return param.ndim < 2 or "norm" in lowered or lowered.endswith("bias")


def encoder_depth(name: str, num_layers: int) -> int:
    """Depth of an encoder parameter for LLRD: 0 = embeddings, N+1 = layer N, L+1 = the rest.

    Args:
        name: parameter name inside the Tagger (``encoder.…``).
        num_layers: number of numbered encoder layers ``L``.
    """
    match = _LAYER.match(name)
    if match:
        return int(match.group(1)) + 1
    if name.startswith("encoder.") and "embeddings" in name.split(".")[1:3]:
        return 0
    return num_layers + 1


def _num_layers(names: List[str]) -> int:
    indices = [int(m.group(1)) for m in map(_LAYER.match, names) if m]
    return max(indices) + 1 if indices else 0


def param_groups(
    model: nn.Module, *, lr: float, head_lr: float, layer_decay: float = 1.0, weight_decay: float = 0.0
) -> List[Dict]:
    """AdamW parameter groups for a ``Tagger``.

    Encoder parameters (names starting with ``encoder.``) get ``lr * layer_decay ** max(0, L - depth)``
    (see ``encoder_depth``): the top layer ``L-1`` and non-layer encoder parameters (pooler, final
    norm) train at ``lr``, each layer below one factor slower, the embeddings at
    ``lr * layer_decay ** L``. Everything else (head, CRF) trains at ``head_lr``. Biases/norm
    weights/vectors and the CRF get no weight decay. A BiLSTM encoder has no numbered layers, so
    all of it trains at ``lr``. Frozen parameters are skipped.

    Returns:
        A list of dicts with ``params``, ``lr``, ``weight_decay`` and a descriptive ``name``;
        empty groups are omitted. Each group also stores ``initial_lr`` for the scheduler.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    num_layers = _num_layers([n for n, _ in named])
    groups: Dict[Tuple[str, bool], Dict] = {}
    for name, param in named:
        if name.startswith("encoder."):
            depth = encoder_depth(name, num_layers)
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
