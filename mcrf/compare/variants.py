"""The variants of the paper's ablation, the objectives that train their weights, and the claims.

A *variant* is a trained objective plus a way to decode it: the three CRF variants share one
set of plain-CRF weights, the two softmax ones share a softmax head's, so each seed trains three
objectives (``crf``, ``mcrf``, ``softmax``) and decodes six ways.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Sequence, Tuple

from mcrf.errors import ConfigError

__all__ = ["Variant", "VARIANTS", "OBJECTIVES", "PAIRS", "DEFAULT_VARIANTS", "parse_variants", "objectives_of"]


@dataclass(frozen=True)
class Variant:
    """One row of the comparison.

    Attributes:
        name: command-line name (``crf-retain``).
        title: the paper's name (``CRF + Retain``).
        objective: the trained decoder (``TrainConfig.decoder``) whose weights it decodes.
        mode: ``MaskedCRF.mode`` at decoding (``None`` for the softmax head).
        postprocess: how an illegal raw output is made legal (``retain``/``discard``).
    """

    name: str
    title: str
    objective: str
    mode: Optional[str]
    postprocess: str


VARIANTS: Dict[str, Variant] = {v.name: v for v in (
    Variant("softmax-retain", "softmax + Retain", "softmax", None, "retain"),
    Variant("softmax-discard", "softmax + Discard", "softmax", None, "discard"),
    Variant("crf-retain", "CRF + Retain", "crf", "crf", "retain"),
    Variant("crf-discard", "CRF + Discard", "crf", "crf", "discard"),
    Variant("mcrf-decoding", "MCRF-decoding", "crf", "mcrf-decoding", "retain"),
    Variant("mcrf", "MCRF-training", "mcrf", "mcrf", "retain"),
)}
DEFAULT_VARIANTS: Tuple[str, ...] = tuple(VARIANTS)
#: Training objectives in the order their cells run.
OBJECTIVES: Tuple[str, ...] = ("crf", "mcrf", "softmax")
#: The claims that matter, as (better?, baseline) variant pairs: ΔF1 = first − second.
PAIRS: Tuple[Tuple[str, str], ...] = (("mcrf", "crf-retain"), ("mcrf", "mcrf-decoding"),
                                      ("mcrf-decoding", "crf-discard"))


def parse_variants(text: "str | Sequence[str]") -> Tuple[str, ...]:
    """Variant names from ``"crf-retain,mcrf"`` (or a list), checked, duplicates dropped, order kept.

    Raises:
        ConfigError: an unknown name or none at all.
    """
    names = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise ConfigError(f"expected variants from {', '.join(VARIANTS)} (comma-separated), got "
                          f"{', '.join(unknown) if unknown else 'none'}; e.g. --variants crf-retain,mcrf")
    return tuple(dict.fromkeys(names))


def objectives_of(variants: Iterable[str]) -> Tuple[str, ...]:
    """The objectives that must be trained for ``variants``, in ``OBJECTIVES`` order."""
    needed = {VARIANTS[name].objective for name in variants}
    return tuple(o for o in OBJECTIVES if o in needed)
