"""Brute-force reference for the CRF tests: enumerate every tag path of tiny sequences."""

from __future__ import annotations

import itertools
import math
from typing import List, Sequence, Tuple

import torch

from mcrf import MaskedCRF


def constraint_tables(crf: MaskedCRF, train: bool):
    """The (start, transitions, end) tables a mode applies in training or decoding."""
    if crf.mode == "crf" or (train and crf.mode == "mcrf-decoding"):
        k = crf.num_tags
        return torch.ones(k, dtype=torch.bool), torch.ones(k, k, dtype=torch.bool), torch.ones(k, dtype=torch.bool)
    return crf.allowed_start, crf.allowed_transitions, crf.allowed_end


def legal(path: Sequence[int], tables) -> bool:
    start, trans, end = tables
    if not path:
        return True
    if not start[path[0]] or not end[path[-1]]:
        return False
    return all(trans[a, b] for a, b in zip(path, path[1:]))


def score(crf: MaskedCRF, emissions: torch.Tensor, path: Sequence[int]) -> float:
    """Score of ``path`` over ``emissions (L, K)`` (only the unmasked positions)."""
    if not path:
        return 0.0
    total = crf.start_transitions[path[0]].item() + crf.end_transitions[path[-1]].item()
    total += sum(emissions[i, t].item() for i, t in enumerate(path))
    total += sum(crf.transitions[a, b].item() for a, b in zip(path, path[1:]))
    return total


def all_paths(crf: MaskedCRF, emissions: torch.Tensor, train: bool) -> List[Tuple[float, Tuple[int, ...]]]:
    """Every legal path of one sequence ``(L, K)`` with its score, best first."""
    tables = constraint_tables(crf, train)
    paths = [
        (score(crf, emissions, p), p)
        for p in itertools.product(range(crf.num_tags), repeat=emissions.shape[0])
        if legal(p, tables)
    ]
    return sorted(paths, key=lambda sp: -sp[0])


def log_z(crf: MaskedCRF, emissions: torch.Tensor) -> float:
    scores = [s for s, _ in all_paths(crf, emissions, train=True)]
    if not scores:
        return 0.0
    top = max(scores)
    return top + math.log(sum(math.exp(s - top) for s in scores))


def marginals(crf: MaskedCRF, emissions: torch.Tensor) -> torch.Tensor:
    """``(L, K)`` posterior over the paths legal in decoding."""
    paths = all_paths(crf, emissions, train=False)
    top = paths[0][0]
    out = torch.zeros(emissions.shape[0], crf.num_tags, dtype=torch.float64)
    total = 0.0
    for s, p in paths:
        w = math.exp(s - top)
        total += w
        for i, t in enumerate(p):
            out[i, t] += w
    return out / total
