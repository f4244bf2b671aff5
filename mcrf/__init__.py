"""mcrf: Masked CRF sequence labeling for PyTorch.

``from mcrf import MaskedCRF`` gives the torch-only layer. The package itself imports
nothing heavy: ``MaskedCRF`` (and with it torch) is loaded on first access, so the CLI can
configure the process (threads, OpenMP) before torch starts. Taggers, data readers and the
CLI import transformers/datasets lazily too.
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = ["MaskedCRF", "__version__"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from mcrf.crf.layer import MaskedCRF


def __getattr__(name: str):
    if name == "MaskedCRF":
        from mcrf.crf.layer import MaskedCRF

        return MaskedCRF
    raise AttributeError(f"module 'mcrf' has no attribute {name!r}")
