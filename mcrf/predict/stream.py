"""Streaming prediction: read sentences lazily, tag them in bounded chunks, yield in input order.

``predict_stream`` holds at most one chunk (``chunk_batches * batch_size`` sentences) in
memory, whatever the input size, and each forward pass at most ``batch_words`` padded words
(a longer sentence alone), so long lines do not multiply the memory of a batch. Inside a chunk ``Tagger.predict`` sorts the sentences by
length, so each batch pads little (bucketed batching), and the results are put back in input
order. Empty sentences (empty input lines) come out as empty predictions, so output records
stay aligned with input lines.

Inputs (``read_input``, ``--input-format``): ``auto`` (the default) reads CoNLL or raw text by
the conservative rule documented in ``mcrf.data.sniff`` and says which on stderr when the input
could be either; raw text, one
sentence per line (tokenized by ``mcrf.data.tokenize_line`` with character offsets into the line); pre-tokenized text (words
separated by whitespace, ``mcrf.data.text.pretokenized_line``); or a CoNLL column file
(``mcrf.data.read_columns`` without a tag column: first column = word, every word line with the
same number of columns, blank lines between sentences, ``-DOCSTART-`` dropped). A path, a
binary stream or ``-`` for standard input; lines are read and decoded by
``mcrf.data.text.text_lines`` (the one raw-text line reader), so a bad byte is reported with its line number.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, List, Optional, Tuple, Union

from mcrf.data.batching import BATCH_WORDS
from mcrf.data.readers import read_columns, source_name
from mcrf.data.sniff import sniff_input
from mcrf.data.text import read_pretokenized, read_text_lines
from mcrf.data.types import Sentence
from mcrf.errors import ConfigError, InputNotFound
from mcrf.evaluation import EvaluateConfig
from mcrf.fields import choice, codec, inherit, integer, option, validate
from mcrf.predict.formats import FORMATS
from mcrf.models.decoding import Prediction
from mcrf.models.quantize import QUANTIZATIONS, check_quantization

logger = logging.getLogger(__name__)

__all__ = ["INPUT_FORMATS", "PredictConfig", "Prediction", "predict_stream", "read_input", "set_mmap_threshold"]

INPUT_FORMATS = ("auto", "text", "pretokenized", "conll")


def _quantization(name: str, value: Any) -> Any:
    check_quantization(value)  # the scheme; __post_init__ checks it against the device
    return value


@dataclass
class PredictConfig:
    """Defaults of ``mcrf predict`` (the CLI builds its flags from these fields)."""

    batch_size: int = option(32, check=integer(1), help="sentences per forward pass")
    batch_words: int = option(BATCH_WORDS, check=integer(1), help=(
        "padded words per forward pass (sentences x the longest): long sentences go in smaller batches, one "
        "longer than this alone, so memory follows the words, not only the sentence count"))
    chunk_batches: int = option(64, check=integer(1), help=(
        "batches read ahead and sorted by length together; memory is bounded by chunk_batches * batch_size "
        "sentences"))
    input_format: str = option("auto", check=choice(INPUT_FORMATS), help=(
        "auto (CoNLL when every non-blank line has the same two or more columns and the last holds tags of one "
        "scheme, at least one an entity tag; else text; the choice is printed once on stderr), text (one raw "
        "sentence per line), pretokenized (one sentence of whitespace-separated words per line) or conll (one "
        "word per line, first column)"))
    output_format: str = option("conll", check=choice(tuple(FORMATS)), help=(
        f"{', '.join(FORMATS)} (see mcrf.predict.formats)"))
    encoding: str = option("utf-8", check=codec(), help=(
        "encoding of the input, any text encoding Python knows, utf-16/utf-32 included"))
    device: Optional[str] = inherit(EvaluateConfig, "device")
    mmap_threshold: Optional[int] = option(128 * 1024, check=integer(1, optional=True, none_means="leave malloc "
                                                                                                    "alone"), help=(
        "glibc only: allocations of at least this many bytes get their own memory map, returned to the system "
        "when freed (mallopt M_MMAP_THRESHOLD); without it the heap grows with fragmentation over long inputs "
        "(+19% peak RSS at 10x the input with MiniLM, measured); none leaves malloc alone"))
    quantize: Optional[str] = option(None, check=_quantization, metavar="{" + ",".join(QUANTIZATIONS) + "}", help=(
        "int8 quantizes the encoder's Linear layers for faster CPU prediction (mcrf.models.quantize; CPU "
        "only, so no device means the CPU); none keeps float32"))

    def __post_init__(self) -> None:
        validate(self)
        check_quantization(self.quantize, self.device if self.device is not None else "cpu")  # with the device


def _resolve(source: Union[str, Path, IO[bytes]]) -> Union[Path, IO[bytes]]:
    """``-`` -> standard input's binary stream; a path checked for a prediction-specific message."""
    if not isinstance(source, (str, Path)):
        return source
    if str(source) == "-":
        return sys.stdin.buffer
    path = Path(source)
    if not path.exists() or path.is_dir():
        raise InputNotFound(f"input {path} {'is a directory' if path.exists() else 'does not exist'}; "
                            "pass a text file, a CoNLL file or - for stdin")
    return path


def read_input(source: Union[str, Path, IO[bytes]], input_format: str = "auto",
               encoding: str = "utf-8") -> Iterator[Sentence]:
    """Stream the sentences of a prediction input (see the module docstring for the formats).

    ``text`` and ``pretokenized`` give one sentence per line, empty lines included (as empty
    sentences); ``conll`` gives one sentence per block of word lines; ``auto`` picks ``conll`` or
    ``text`` by the conservative rule of ``mcrf.data.sniff`` and logs its choice once (INFO when the input
    could have been either, else DEBUG).

    Raises:
        ConfigError: an unknown ``input_format``.
        DataError: undecodable bytes, ragged CoNLL columns (``path:line:``).
        InputNotFound: a missing input file.
    """
    if input_format not in INPUT_FORMATS:
        raise ConfigError(f"unknown input format {input_format!r}; expected one of {', '.join(INPUT_FORMATS)}")
    if input_format == "auto":
        resolved = _resolve(source)
        readable, sniffed = sniff_input(resolved, encoding)
        logger.log(logging.INFO if sniffed.ambiguous else logging.DEBUG,  # plain text is no news
                   "%s: reading %s input (%s); pass --input-format to choose", source_name(resolved),
                   sniffed.format, sniffed.reason)
        try:
            yield from read_input(readable, sniffed.format, encoding)
        finally:
            if readable is not resolved:  # the replaying wrapper sniff_input made (it leaves stdin open)
                readable.close()
        return
    if input_format == "conll":
        yield from read_columns(_resolve(source), tag_column=None, encoding=encoding, allow_empty=True)
        return
    read = read_text_lines if input_format == "text" else read_pretokenized
    yield from read(_resolve(source), encoding)


def set_mmap_threshold(threshold: int) -> bool:
    """Fix glibc's ``M_MMAP_THRESHOLD`` for this process (see ``PredictConfig.mmap_threshold``).

    A process-wide setting, so the CLI calls it, never the library functions.

    Returns:
        True when applied; False where malloc is not glibc's (macOS, Windows, musl).
    """
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        return False
    m_mmap_threshold = -3  # from <malloc.h>
    return bool(mallopt and mallopt(m_mmap_threshold, int(threshold)) == 1)


def _chunks(items: Iterable[Sentence], size: int) -> Iterator[List[Sentence]]:
    chunk: List[Sentence] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def predict_stream(tagger, sentences: Iterable[Sentence], batch_size: int = 32,
                   chunk_batches: int = 64, batch_words: int = BATCH_WORDS) -> Iterator[Prediction]:
    """Tag a (possibly endless) stream of sentences, yielding predictions in input order.

    Reads ``chunk_batches * batch_size`` sentences at a time, lets ``tagger.predict`` sort them by
    length into batches and run them under ``torch.inference_mode`` (no autograd bookkeeping;
    ``MaskedCRF.marginals`` needs none, its exact fallback is a log-space forward-backward), and
    yields one ``Prediction`` per input sentence; empty sentences give empty predictions. Long
    sentences are split into encoder windows and stitched back inside the tagger, so every word
    gets one tag. Inference mode is entered per chunk, never held across a ``yield``, so the
    caller's code between predictions runs in its normal mode.

    Args:
        tagger: a ``mcrf.models.Tagger``.
        sentences: an iterable of ``Sentence`` (e.g. ``read_input(...)``); consumed lazily.
        batch_size: sentences per forward pass.
        batch_words: padded words per forward pass (``Tagger.predict``'s ``max_words``).
        chunk_batches: batches per chunk (memory bound = ``chunk_batches * batch_size`` sentences).

    Yields:
        ``Prediction(sentence, decoded)`` in input order.

    Raises:
        ConfigError: a non-positive ``batch_size`` or ``chunk_batches``.
    """
    for name, value in (("batch_size", batch_size), ("chunk_batches", chunk_batches), ("batch_words", batch_words)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"expected {name} to be a positive integer, got {value!r}")
    import torch

    for chunk in _chunks(sentences, batch_size * chunk_batches):
        with torch.inference_mode():
            decoded = tagger.predict(chunk, batch_size=batch_size, max_words=batch_words)
        for sentence, result in zip(chunk, decoded):
            yield Prediction(sentence, result)
