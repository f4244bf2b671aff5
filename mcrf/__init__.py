"""mcrf: Masked CRF sequence labeling for PyTorch.

``import mcrf`` loads only the torch-only core (``MaskedCRF`` and the tag-scheme
rules). Taggers, data readers and the CLI import transformers/datasets lazily.
"""

from mcrf.crf import MaskedCRF

__version__ = "0.1.0"

__all__ = ["MaskedCRF", "__version__"]
