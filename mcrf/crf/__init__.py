"""The CRF core: ``MaskedCRF`` and the tag schemes (torch and the standard library only).

- ``layer``: ``MaskedCRF``, the drop-in replacement for pytorch-crf's ``CRF``;
- ``ops``: the fast exp-space recursions (log Z, marginals; the checked path), gold scores;
- ``exact``: the exact log-space forward-backward (``validate=False``, the scan, and ``ops``' fallback);
- ``scan``: the log-depth (parallel prefix) algorithms and the rule behind ``algorithm="auto"``;
- ``packing``: the packed layout every algorithm works on; ``numerics``: log 0, exp range, log-sum-exp;
- ``viterbi``: k-best Viterbi over either;
- ``checks``: the input checks of ``validate=True``;
- ``schemes``: BIO/BIOES/... as data tables, allowed transitions, spans, repair, conversion.

``MaskedCRF`` is loaded on first access, so ``import mcrf.crf.schemes`` does not import the layer.
"""

from typing import TYPE_CHECKING

__all__ = ["MaskedCRF"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from mcrf.crf.layer import MaskedCRF


def __getattr__(name: str):
    if name == "MaskedCRF":
        from mcrf.crf.layer import MaskedCRF

        return MaskedCRF
    raise AttributeError(f"module 'mcrf.crf' has no attribute {name!r}")
