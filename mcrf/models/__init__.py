"""Taggers: an encoder (Hugging Face ``AutoModel`` or a BiLSTM) feeding ``MaskedCRF`` or a softmax.

``transformers`` is imported only when an HF encoder is built or loaded.
"""

from mcrf.models.config import TaggerConfig
from mcrf.models.decoding import Decoded
from mcrf.models.tagger import Collator, Tagger

__all__ = ["Tagger", "TaggerConfig", "Decoded", "Collator"]
