"""Data layer: readers, the dataset registry, ``load_corpus``, raw text and ``inspect_corpus``.

Nothing here imports ``datasets`` or ``transformers`` at import time: the hub reader and
sub-word alignment import them inside their functions.
"""

from mcrf.data.corpus import LoadConfig, load_corpus
from mcrf.data.hub import read_hub_dataset
from mcrf.data.inspect import format_inspection, inspect_corpus
from mcrf.data.readers import read_columns, read_jsonl, read_line_pairs
from mcrf.data.registry import REGISTRY
from mcrf.data.text import read_pretokenized, read_text_lines, tokenize_line
from mcrf.data.types import Corpus, Sentence

__all__ = [
    "Corpus", "LoadConfig", "REGISTRY", "Sentence", "format_inspection", "inspect_corpus", "load_corpus",
    "read_columns", "read_hub_dataset", "read_jsonl", "read_line_pairs", "read_pretokenized", "read_text_lines",
    "tokenize_line",
]
