"""Plain data types shared by readers, alignment, training and prediction."""

from __future__ import annotations

from dataclasses import dataclass, field

from mcrf.errors import DataError


@dataclass(frozen=True)
class Sentence:
    """One sentence of words, with gold tags when known.

    Attributes:
        tokens: the words, in order.
        tags: one tag string per word, or ``None`` for unlabelled text.
        source: where the sentence starts, as ``"file:line"`` (for error messages), or ``None``.
        offsets: optional ``(start, end)`` character offsets of each word in ``text``.
        text: the original line the words came from (raw-text prediction), or ``None``.
    """

    tokens: tuple[str, ...]
    tags: tuple[str, ...] | None = None
    source: str | None = None
    offsets: tuple[tuple[int, int], ...] | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        if self.tags is not None and len(self.tags) != len(self.tokens):
            where = f"{self.source}: " if self.source else ""
            raise DataError(
                f"{where}expected one tag per token, got {len(self.tokens)} tokens and "
                f"{len(self.tags)} tags; give each token exactly one tag"
            )
        if self.offsets is not None and len(self.offsets) != len(self.tokens):
            raise ValueError(
                f"expected one offset per token, got {len(self.tokens)} tokens and "
                f"{len(self.offsets)} offsets"
            )


@dataclass
class Corpus:
    """A loaded dataset: named splits over one label set and one tag scheme.

    Attributes:
        splits: split name (``"train"``, ``"dev"``, ``"test"``) to its sentences.
        labels: the complete tag inventory of ``scheme`` for the entity types seen in
            any split (so a tag absent from train still has a row in the CRF mask),
            ``"O"`` first, then sorted.
        scheme: canonical scheme name of the tags in ``splits`` (after conversion).
        name: dataset name or path it was loaded from.
        report: per-split notes of the loader (illegal gold counts, what the policy did, ...).
        notes: corpus-wide decisions the user should hear once (``mcrf inspect`` and the training
            header print them), e.g. tags read from the last of more columns than the registry
            describes.
    """

    splits: dict[str, list[Sentence]]
    labels: list[str]
    scheme: str
    name: str = ""
    report: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
