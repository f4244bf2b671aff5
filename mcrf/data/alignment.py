"""Sub-word alignment: one CRF position per word, however long the sentence.

A sub-word encoder sees sub-words while labels belong to words. The CRF therefore
runs over words, and each word is represented by the encoder state of its FIRST
sub-word. Sentences longer than the encoder window (``max_length`` sub-words
including special tokens) are cut into overlapping windows of whole words; every
word is then read from exactly one "owner" window (the one giving it the most
context on both sides), so every input word receives exactly one vector, in
order, none dropped or duplicated.

Pipeline (``SubwordAligner``): tokenize all words once with
``is_split_into_words=True`` (a fast tokenizer's ``word_ids()`` maps sub-words
to words) -> plan windows over words (``plan_windows``) -> build one encoder
input row per window (special tokens around the words' sub-words) -> index
tensors ``word_window``/``word_position`` that say where each word's first
sub-word sits. After the encoder ran on the windows, ``gather_words`` picks the
owner rows into a word-level tensor ``(num_sentences, max_words, hidden)``.

Only torch is imported here; the tokenizer object is passed in by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mcrf.errors import ConfigError, DataError

__all__ = ["WindowPlan", "plan_windows", "SubwordAligner", "gather_words"]


@dataclass(frozen=True)
class WindowPlan:
    """How one sentence is cut into encoder windows.

    Attributes:
        windows: word ranges ``(start, end)`` (end exclusive) of each window, in order.
        owner: for each word, the index into ``windows`` of the window it is read from.
    """

    windows: tuple[tuple[int, int], ...]
    owner: tuple[int, ...]


def plan_windows(lengths: Sequence[int], budget: int, stride: int) -> WindowPlan:
    """Cut a sentence into overlapping windows of whole words.

    A window holds as many consecutive whole words as fit their sub-words in
    ``budget``. A word longer than ``budget`` counts as ``budget`` sub-words (the
    caller keeps only its first ``budget`` sub-words; the CRF needs only the first).
    Consecutive windows share up to ``stride`` sub-words of whole words, and each
    window reaches at least one word further than the previous one. Each word is owned by the window where its context
    ``min(left, right)`` is largest (a side touching the sentence border counts as
    unlimited); ties go to the earlier window.

    Args:
        lengths: number of sub-words of each word (0 is treated as 1).
        budget: sub-words available per window (window size minus special tokens).
        stride: sub-words of overlap between consecutive windows, ``0 <= stride < budget``.

    Returns:
        The windows and each word's owner window.

    Raises:
        ConfigError: for a non-positive budget or a stride outside ``[0, budget)`` (a ValueError).
    """
    if budget < 1:
        raise ConfigError(f"expected a window budget of at least 1 sub-word, got {budget}; increase max_length")
    if not 0 <= stride < budget:
        raise ConfigError(
            f"expected 0 <= stride < {budget} (the sub-words a window holds besides special tokens), "
            f"got stride={stride}; pass a smaller stride or a larger max_length"
        )
    n = len(lengths)
    if n == 0:
        return WindowPlan((), ())
    sizes = [min(max(int(length), 1), budget) for length in lengths]
    if sum(sizes) <= budget:  # the common case: one window holds the whole sentence
        return WindowPlan(((0, n),), (0,) * n)
    cumulative = [0]
    for size in sizes:
        cumulative.append(cumulative[-1] + size)

    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        end = start
        while end < n and cumulative[end + 1] - cumulative[start] <= budget:
            end += 1
        windows.append((start, end))
        if end == n:
            break
        overlap = min(stride, budget - sizes[end])  # the next window must also take word `end`
        next_start = end
        while next_start - 1 > start and cumulative[end] - cumulative[next_start - 1] <= overlap:
            next_start -= 1
        start = next_start

    best_score = [-1.0] * n
    owner = [0] * n
    for index, (w_start, w_end) in enumerate(windows):
        for word in range(w_start, w_end):
            left = float("inf") if w_start == 0 else cumulative[word] - cumulative[w_start]
            right = float("inf") if w_end == n else cumulative[w_end] - cumulative[word + 1]
            score = min(left, right)
            if score > best_score[word]:
                best_score[word] = score
                owner[word] = index
    return WindowPlan(tuple(windows), tuple(owner))


class SubwordAligner:
    """Turns sentences of words into windowed encoder inputs plus word index tensors.

    Picklable (it holds only the tokenizer and integers), so it can live inside a
    DataLoader ``collate_fn`` with worker processes.

    Args:
        tokenizer: a Hugging Face FAST tokenizer (``word_ids()`` is required). For
            byte-level BPE tokenizers (RoBERTa, GPT-2) it must be created with
            ``add_prefix_space=True``.
        max_length: window size in sub-words INCLUDING special tokens (e.g. 512).
        stride: sub-words of overlap between consecutive windows of a long sentence.

    Raises:
        ConfigError: for a slow tokenizer (its encoder cannot align sub-words to words), or
            when the window cannot hold one sub-word besides the special
            tokens, or ``stride`` does not fit in the window.
    """

    def __init__(self, tokenizer: Any, max_length: int, stride: int) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ConfigError(
                f"expected a fast tokenizer (word_ids() is needed to align sub-words to words), got "
                f"{type(tokenizer).__name__}; load it with AutoTokenizer.from_pretrained(..., use_fast=True) "
                "or convert the model's tokenizer to tokenizer.json"
            )
        self.tokenizer = _without_length_warning(tokenizer)
        self.max_length = int(max_length)
        self.stride = int(stride)
        self.prefix, self.suffix, self.prefix_types, self.word_type, self.suffix_types = _special_layout(tokenizer)
        self.budget = self.max_length - len(self.prefix) - len(self.suffix)
        if self.budget < 1:
            raise ConfigError(
                f"expected max_length > {len(self.prefix) + len(self.suffix)} (the tokenizer adds that many "
                f"special tokens), got max_length={self.max_length}; pass a larger max_length"
            )
        plan_windows([1], self.budget, self.stride)  # validates stride against the budget
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.unk_id = tokenizer.unk_token_id
        self.uses_token_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())

    def word_pieces(self, sentences: Sequence[Sequence[str]]) -> list[list[list[int]]]:
        """Sub-word ids of every word (at least one per word: a word the tokenizer drops becomes [UNK]).

        Args:
            sentences: words of each sentence.

        Returns:
            ``pieces[sentence][word]`` = list of sub-word ids (without special tokens).
        """
        non_empty = [i for i, words in enumerate(sentences) if len(words) > 0]
        pieces: list[list[list[int]]] = [[] for _ in sentences]
        if not non_empty:
            return pieces
        encoding = self.tokenizer(
            [list(sentences[i]) for i in non_empty],
            is_split_into_words=True,
            add_special_tokens=False,
            truncation=False,
        )
        for row, index in enumerate(non_empty):
            words: list[list[int]] = [[] for _ in sentences[index]]
            for token_id, word_id in zip(encoding["input_ids"][row], encoding.word_ids(row)):
                if word_id is not None:
                    words[word_id].append(token_id)
            for position, word_ids in enumerate(words):
                if not word_ids:
                    if self.unk_id is None:
                        raise DataError(
                            f"word {sentences[index][position]!r} produced no sub-word and the tokenizer has "
                            "no unknown token to stand in for it; remove or replace such words"
                        )
                    word_ids.append(self.unk_id)
            pieces[index] = words
        return pieces

    def __call__(self, sentences: Sequence[Sequence[str]]) -> dict[str, Tensor]:
        """Build windowed encoder inputs for a batch of sentences.

        Args:
            sentences: words of each of the ``B`` sentences (may be empty).

        Returns:
            ``input_ids`` (N, S) long, ``attention_mask`` (N, S) long, ``token_type_ids``
            (N, S) long when the tokenizer uses them — one row per window, N >= 0;
            ``word_window`` (B, W) long and ``word_position`` (B, W) long: the window row
            and the position in it of each word's first sub-word (0 at padding);
            ``word_mask`` (B, W) bool. W is the longest sentence's word count.
        """
        pieces = self.word_pieces(sentences)
        rows: list[list[int]] = []
        types: list[list[int]] = []
        width = max((len(words) for words in sentences), default=0)
        windows_of: list[list[int]] = []  # per sentence: owner row of each word
        positions_of: list[list[int]] = []  # per sentence: first-sub-word position of each word
        for words in pieces:
            plan = plan_windows([len(p) for p in words], self.budget, self.stride)
            first_row = len(rows)
            starts_of_window: list[list[int]] = []
            for start, end in plan.windows:
                ids = list(self.prefix)
                starts = []
                for word in range(start, end):
                    starts.append(len(ids))
                    ids.extend(words[word][: self.budget])
                inner = len(ids) - len(self.prefix)
                ids.extend(self.suffix)
                rows.append(ids)
                types.append(self.prefix_types + [self.word_type] * inner + self.suffix_types)
                starts_of_window.append(starts)
            windows_of.append([first_row + w for w in plan.owner])
            positions_of.append([starts_of_window[w][i - plan.windows[w][0]] for i, w in enumerate(plan.owner)])
        seq = max((len(r) for r in rows), default=0)
        out = {
            "input_ids": _padded(rows, seq, self.pad_id),  # shape: (N, S)
            "attention_mask": _padded([[1] * len(r) for r in rows], seq, 0),  # shape: (N, S)
            "word_window": _padded(windows_of, width, 0),  # shape: (B, W)
            "word_position": _padded(positions_of, width, 0),  # shape: (B, W)
            "word_mask": _padded([[1] * len(w) for w in windows_of], width, 0).bool(),  # shape: (B, W)
        }
        token_type_ids = _padded(types, seq, 0)  # shape: (N, S)
        if self.uses_token_types:
            out["token_type_ids"] = token_type_ids
        return out


def _padded(rows: Sequence[Sequence[int]], width: int, fill: int) -> Tensor:
    """Right-pad integer lists to ``width`` and stack them, shape (len(rows), width) long."""
    return torch.tensor([list(r) + [fill] * (width - len(r)) for r in rows], dtype=torch.long).reshape(
        len(rows), width
    )


def gather_words(states: Tensor, word_window: Tensor, word_position: Tensor) -> Tensor:
    """Pick each word's first-sub-word state from its owner window.

    Args:
        states: encoder output per window, shape (N, S, H).
        word_window: window row of each word, shape (B, W).
        word_position: position of each word's first sub-word in that row, shape (B, W).

    Returns:
        Word-level states, shape (B, W, H) (rows at padded words are arbitrary; mask them).
    """
    if states.shape[0] == 0:
        batch, width = word_window.shape
        return states.new_zeros(batch, width, states.shape[-1])  # shape: (B, W, H)
    return states[word_window, word_position]  # shape: (B, W, H)


#: The key under which a transformers tokenizer records that it gave its one "Token indices sequence length is
#: longer than the specified maximum sequence length ... indexing errors" warning.
_LENGTH_WARNING = "sequence-length-is-longer-than-the-specified-maximum"


def _without_length_warning(tokenizer: Any) -> Any:
    """``tokenizer`` marked as having given its too-long-sequence warning already, so it never does.

    The warning says a sequence longer than ``model_max_length`` will cause indexing errors; mcrf
    tokenizes whole sentences and then cuts them into windows that fit, so it is wrong here. Only that
    warning of only this tokenizer is affected (transformers keeps a once-only flag per tokenizer).
    """
    flags = getattr(tokenizer, "deprecation_warnings", None)
    if isinstance(flags, dict):
        flags[_LENGTH_WARNING] = True
    return tokenizer


def _special_layout(tokenizer: Any) -> tuple[list[int], list[int], list[int], int, list[int]]:
    """Special tokens the tokenizer puts before/after a single sequence, and token types.

    Found by encoding a probe word with and without special tokens, so it works for
    any post-processor template ([CLS] x [SEP], <s> x </s>, x <sep> <cls>, ...).
    """
    for probe in ("a", "the", str(tokenizer.unk_token or "")):
        if not probe:
            continue
        encoding = tokenizer([[probe]], is_split_into_words=True, add_special_tokens=True)
        word_ids = encoding.word_ids(0)
        inside = [i for i, w in enumerate(word_ids) if w is not None]
        if not inside:
            continue
        ids = encoding["input_ids"][0]
        type_row = encoding["token_type_ids"][0] if "token_type_ids" in encoding else [0] * len(ids)
        first, last = inside[0], inside[-1]
        return (
            list(ids[:first]),
            list(ids[last + 1 :]),
            list(type_row[:first]),
            int(type_row[first]),
            list(type_row[last + 1 :]),
        )
    raise ConfigError(
        f"could not find where {type(tokenizer).__name__} puts its special tokens: probe words produced "
        "no sub-words; use a tokenizer whose vocabulary covers plain ASCII words"
    )
