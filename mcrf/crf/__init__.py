"""The CRF core: ``MaskedCRF`` and the tag schemes (torch and the standard library only).

- ``layer``: ``MaskedCRF``, the drop-in replacement for pytorch-crf's ``CRF``;
- ``ops``: the sequential algorithms over packed sequences (log Z, gold scores, marginals);
- ``scan``: the log-depth (parallel prefix) algorithms;
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
