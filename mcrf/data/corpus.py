"""``load_corpus``: read a dataset's splits, detect and check its scheme, repair or drop, convert.

The one path every command uses to get labelled data (training, evaluation, ``mcrf inspect``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from mcrf.crf import schemes, spans
from mcrf.data import hub
from mcrf.data.readers import read_columns, read_jsonl, read_line_pairs
from mcrf.data.registry import (REGISTRY, DatasetEntry, SplitFiles, find_local, find_split_files, layout_note,
                                missing_message)
from mcrf.data.types import Corpus, Sentence
from mcrf.errors import ConfigError, DataError, InputNotFound, located
from mcrf.fields import choice, codec, integer, number, option, scheme_name, text, validate

logger = logging.getLogger(__name__)

POLICIES = ("repair", "drop", "error")
CORPUS_FORMATS = ("columns", "pairs", "jsonl")
_DEFAULT_TARGET = {"IOB1": "BIO", "IOE1": "IOE2"}
_SPLIT_ORDER = {"train": 0, "dev": 1, "test": 2}  # reports and checks go train, dev, test (then others)

__all__ = ["POLICIES", "CORPUS_FORMATS", "LoadConfig", "RawSplits", "load_corpus", "read_splits"]


@dataclass
class LoadConfig:
    """How :func:`load_corpus` reads a dataset (the data flags of ``train``, ``evaluate`` and ``inspect``).

    Each field carries its help text and its one validator (``mcrf.fields.option``).
    """

    data_dir: str | None = option(None, check=text(optional=True), help=(
        "folder holding the corpus files or a <name>/ folder of them (default: $MCRF_DATA_DIR, else the hub)"))
    scheme: str | None = option(None, check=scheme_name(optional=True), help=(
        "tag scheme to convert to (BIO, BIOES, ...); default: the corpus's own, IOB1 -> BIO, IOE1 -> IOE2"))
    source_scheme: str | None = option(None, check=scheme_name(optional=True), help=(
        "tag scheme the files are written in; default: detected from the tag sequences"))
    policy: str = option("repair", check=choice(POLICIES), help=(
        "what to do with an illegal gold tag sequence: repair it (conlleval semantics), drop the sentence, "
        "or stop with an error naming file:line"))
    format: str | None = option(None, check=choice(CORPUS_FORMATS, optional=True), cli=False, help=(
        "file format: columns, pairs or jsonl; default: the registry's, else guessed from the file names"))
    token_column: int | None = option(None, check=integer(optional=True), help=(
        "token column of column files, 0-based, negative counts from the end (default: the registry's, else 0)"))
    tag_column: int | None = option(None, check=integer(optional=True), help=(
        "tag column of column files, 0-based, negative counts from the end (default: the last column, for "
        "registered corpora too, so a release with extra columns still reads its tags)"))
    separator: str | None = option(None, check=text(optional=True), help=(
        "column separator (default: runs of spaces and tabs)"))
    encoding: str | None = option(None, check=codec(optional=True), help=(
        "corpus file encoding, any text encoding Python knows, utf-16/utf-32 included (default: the "
        "registry's, else utf-8)"))
    hub_tag_column: str | None = option(None, check=text(optional=True), cli=False, help=(
        "tag column of a hub dataset (default: ner_tags, tags, ...)"))
    max_reported: int = option(5, check=integer(0), cli=False, help=(
        "how many illegal file:line locations the report keeps per split"))
    dev_fraction: float = option(0.0, check=number(0, 1, high_open=True), help=(
        "share of train (its last sentences) used as dev when the dataset has no dev split, e.g. CoNLL-2000; "
        "0 never carves one"))

    def __post_init__(self) -> None:
        validate(self)


def load_corpus(name_or_path: str, *, config: LoadConfig | None = None, used: Mapping[str, int | None] | None = None,
                **overrides) -> Corpus:
    """Load a labelled dataset by registry name, path or hub id.

    Args:
        name_or_path: a registered name (``sample``, ``conll2003``, ...), a folder of split
            files, one file, a ``save_to_disk`` folder, or a Hugging Face hub id.
        config: defaults; ``overrides`` (any :class:`LoadConfig` field, e.g. ``data_dir=``,
            ``scheme=``, ``policy=``) replace its fields.
        used: the splits the caller reads, each with how many of its first (kept) sentences
            (``None``: all of them), e.g. ``{"test": None}`` for ``evaluate --split test``. Repaired
            or dropped gold sentences are logged only there (the counts in ``report`` always cover
            every split). Default: every split, whole.

    Returns:
        A :class:`Corpus` in the target scheme, with the complete label inventory over all
        splits and per-split counts in ``report``.

    Raises:
        InputNotFound: the dataset is nowhere to be found (the message says where to put it).
        DataError: bad files, unknown tag prefixes, or an illegal sequence under ``policy="error"``;
            the message starts with ``path:line:``.
        ConfigError: a setting that cannot apply (``dev_fraction`` leaving no training sentence).
    """
    cfg = dataclasses.replace(config or LoadConfig(), **overrides)
    raw, native, origins, read_notes = read_splits(name_or_path, cfg)
    carved = _carve_dev(raw, origins, cfg.dev_fraction)
    line_per_token = {split: fmt == "columns" for split, fmt in origins.items()}
    source = cfg.source_scheme or _detect(raw, native, name_or_path, line_per_token)
    target = cfg.scheme or _DEFAULT_TARGET.get(source, source)
    splits: dict[str, list[Sentence]] = {}
    report: dict[str, dict] = {}
    for split, sentences in _in_split_order(raw):  # a carved dev split is listed between train and test
        kept, notes, illegal_at = _check_split(sentences, source, target, cfg, origins.get(split, ""))
        if used is None or split in used:
            _log_illegal(illegal_at, None if used is None else used[split], source, cfg)
        splits[split] = kept
        report[split] = notes
    if carved:
        report["dev"]["carved_from_train"] = carved
    types = schemes.entity_types(tag for sents in splits.values() for s in sents for tag in s.tags)
    labels = schemes.scheme_labels(types, target)
    return Corpus(splits=splits, labels=labels, scheme=target, name=str(name_or_path), report=report,
                  notes=read_notes)


def _in_split_order(raw: dict[str, list[Sentence]]) -> list[tuple[str, list[Sentence]]]:
    return sorted(raw.items(), key=lambda item: _SPLIT_ORDER.get(item[0], len(_SPLIT_ORDER)))


def _carve_dev(raw: dict[str, list[Sentence]], origins: dict[str, str], fraction: float) -> int:
    """Move the last ``fraction`` of train into a new dev split when there is none (0: never); returns its size."""
    if not fraction or "dev" in raw or not raw.get("train"):
        return 0
    count = max(1, round(len(raw["train"]) * fraction))
    if count >= len(raw["train"]):
        raise ConfigError(f"expected dev_fraction to leave training sentences, got {fraction} of "
                          f"{len(raw['train'])} sentences, which leaves none; pass a smaller --dev-fraction")
    raw["dev"] = raw["train"][-count:]
    raw["train"] = raw["train"][:-count]
    origins["dev"] = origins.get("train", "")
    logger.info("no dev split: using the last %d training sentences as dev", count)
    return count


def _detect(raw: dict[str, list[Sentence]], native: str | None, name: str, line_per_token: dict[str, bool]) -> str:
    """The source scheme: detected from the sequences, the registry's when they hold no entity.

    Labels are checked in file order (train, dev, test), so an error always names the same,
    first offending label with its ``file:line``.
    """
    first_at: dict[str, str] = {}  # prefix -> where it first occurs
    seen = set()
    for split, sentences in _in_split_order(raw):
        for sentence in sentences:
            if sentence.tags is None:
                raise DataError(located(sentence.source or name, None, "expected tags, got a sentence without "
                                        "them; load_corpus needs labelled data (check --tag-column)"))
            for position, tag in enumerate(sentence.tags):
                if tag in seen:
                    continue
                seen.add(tag)
                try:
                    schemes.entity_types([tag])
                except ValueError as err:
                    raise DataError(_at(sentence, position, line_per_token.get(split, False), f"{err}; fix the "
                                        "label, or pass --tag-column if this is not the tag column")) from None
                first_at.setdefault(tag.partition("-")[0],
                                    _location(sentence, position, line_per_token.get(split, False)))
    if set(first_at) <= {"O"}:
        if native is not None:
            return native
        raise DataError(located(name, None, "expected entity tags to detect the tag scheme from, got only O "
                                            "tags; pass source_scheme (--source-scheme)"))
    try:
        return schemes.detect_corpus_scheme(s.tags for sents in raw.values() for s in sents)
    except ValueError as err:
        where = ", ".join(f"{prefix} at {at}" for prefix, at in first_at.items() if prefix != "O")
        raise DataError(located(name, None, f"cannot detect the tag scheme: {err} (first uses: {where}); "
                                            "pass source_scheme (--source-scheme)")) from None


def _location(sentence: Sentence, position: int, line_per_token: bool) -> str:
    """``file:line`` of token ``position`` (column files: one token per line; else the sentence's
    line and ``(token N)``)."""
    where = sentence.source or "<unknown>"
    if not line_per_token:
        return f"{where} (token {position + 1})"
    file, _, line = where.rpartition(":")
    token = min(position, len(sentence.tokens) - 1)
    return f"{file}:{int(line) + token}" if line.isdigit() else where


def _at(sentence: Sentence, position: int, line_per_token: bool, message: str) -> str:
    """``message`` located compiler-style at token ``position``: ``file:line: [token N: ]message``."""
    where = _location(sentence, position, line_per_token)
    if line_per_token:
        return f"{where}: {message}"
    return f"{sentence.source or '<unknown>'}: token {position + 1}: {message}"


def _first_unknown(tags: list[str], scheme: str) -> int:
    """Position of the first tag ``scheme`` cannot parse (its prefix is not one of the scheme's)."""
    for position, tag in enumerate(tags):
        try:
            schemes.first_illegal([tag], scheme)
        except ValueError:
            return position
    return 0


def _check_split(
    sentences: list[Sentence], source: str, target: str, cfg: LoadConfig, origin: str
) -> tuple[list[Sentence], dict, list[tuple[int, str]]]:
    """Check every gold sequence, apply the policy, convert; return kept sentences, notes, and each illegal
    sequence as (how many sentences were kept before it, ``file:line: before -> after``)."""
    line_per_token = origin == "columns"
    kept: list[Sentence] = []
    illegal, illegal_at, tokens = 0, [], 0
    every_illegal: list[tuple[int, str]] = []
    for sentence in sentences:
        tags = list(sentence.tags)
        try:
            position = schemes.first_illegal(tags, source)
        except ValueError as err:
            raise DataError(_at(sentence, _first_unknown(tags, source), line_per_token,
                                f"{err} (--source-scheme)")) from None
        if position is not None:
            illegal += 1
            where = _location(sentence, position, line_per_token)
            before = tags[position - 1] if position > 0 else "<start>"
            after = tags[position] if position < len(tags) else "<end>"
            if cfg.policy == "error":
                raise DataError(_at(
                    sentence, position, line_per_token,
                    f"expected a legal {source} gold sequence, got {before!r} -> {after!r} (position {position} "
                    f"of the sentence at {sentence.source}); fix the tags or load with --policy repair or drop"))
            every_illegal.append((len(kept), f"{where}: {before} -> {after}"))
            if len(illegal_at) < cfg.max_reported:
                illegal_at.append(every_illegal[-1][1])
            if cfg.policy == "drop":
                continue
            tags = spans.repair(tags, source)
        if target != source:
            tags = spans.convert(tags, source, target)
        if tuple(tags) != sentence.tags:
            sentence = dataclasses.replace(sentence, tags=tuple(tags))
        kept.append(sentence)
        tokens += len(sentence.tokens)
    notes = {
        "sentences": len(kept),
        "tokens": tokens,
        "illegal": illegal,
        "illegal_at": illegal_at,
        "policy": cfg.policy,
        "repaired": illegal if cfg.policy == "repair" else 0,
        "dropped": illegal if cfg.policy == "drop" else 0,
        "source_scheme": source,
    }
    return kept, notes, every_illegal


def _log_illegal(illegal: list[tuple[int, str]], first: int | None, source: str, cfg: LoadConfig) -> None:
    """Log the illegal gold sequences among a split's ``first`` kept sentences (``None``: all)."""
    read = [where for position, where in illegal if first is None or position < first]
    if read:
        logger.info("%d illegal %s gold sequences (%s): %s", len(read), source, cfg.policy,
                    ", ".join(read[: cfg.max_reported]))


class RawSplits(NamedTuple):
    """What ``read_splits`` read: sentences as written, before scheme checks and conversion.

    Attributes:
        splits: split name to its sentences.
        native: the registry's native scheme, or ``None``.
        origins: split to the format it was read with (``columns``/``pairs``/``jsonl``/``hub``).
        notes: what the reader decided that the user should hear once (a column layout that
            differs from the registry's description).
    """

    splits: dict[str, list[Sentence]]
    native: str | None
    origins: dict[str, str]
    notes: list[str]


def read_splits(name_or_path: str, cfg: LoadConfig) -> RawSplits:
    """Read the raw splits of a dataset (registered name, local path, or hub id)."""
    entry = REGISTRY.get(name_or_path)
    if entry is not None:
        files, searched = find_local(entry, cfg.data_dir)
        if files is not None:
            return _read_files(files, cfg, entry)
        errors, offline = [], None
        for source in entry.hub:
            if not hub.cached(source.repo_id):  # offline, `datasets` retries for tens of seconds: ask once, fast
                offline = hub.unreachable() or "" if offline is None else offline
                if offline:
                    errors.append(f"{source.repo_id}: not in the local cache, and not tried: {offline}")
                    continue
            from datasets.exceptions import DatasetsError  # here: a source skipped above never imports datasets

            try:
                splits = hub.read_hub_dataset(source.repo_id, config=source.config, revision=source.revision,
                                              tag_column=cfg.hub_tag_column or source.tag_column)
            # what the hub raises for a source it cannot give: missing (DatasetNotFoundError is an OSError),
            # offline or refused (OSError, ConnectionError), broken on the hub (DatasetsError), or in a
            # layout mcrf cannot read (DataError): reported, then the next source is tried. Anything else
            # is a bug of mcrf and propagates.
            except (OSError, DatasetsError, DataError) as err:
                errors.append(f"{source.repo_id}: {type(err).__name__}: {str(err).splitlines()[0][:200]}")
                continue
            return RawSplits(splits, entry.scheme, {s: "hub" for s in splits}, [])
        raise InputNotFound(missing_message(entry, searched, errors))
    path = Path(name_or_path)
    if path.exists():
        if hub.is_saved_dataset(path):
            splits = hub.read_hub_dataset(str(path), tag_column=cfg.hub_tag_column)
            return RawSplits(splits, None, {s: "hub" for s in splits}, [])
        return _read_files(find_split_files(path), cfg, None)
    if "/" in name_or_path and not name_or_path.startswith((".", "/")) and name_or_path.count("/") == 1:
        offline = None if hub.cached(name_or_path) else hub.unreachable()  # skip `datasets`' long retries
        if offline:
            raise InputNotFound(
                f"{name_or_path!r} is no local path, and as a Hugging Face hub id it was not tried: not in the "
                f"local cache, and {offline}; check the path, or the network and the id")
        try:
            splits = hub.read_hub_dataset(name_or_path, tag_column=cfg.hub_tag_column)
        except (ConnectionError, OSError) as err:
            raise InputNotFound(
                f"{name_or_path!r} is no local path, and as a Hugging Face hub id it failed: {err}; "
                f"check the path, or the network and the id"
            ) from err
        return RawSplits(splits, None, {s: "hub" for s in splits}, [])
    raise InputNotFound(
        f"no dataset {name_or_path!r}: not a registered name ({', '.join(REGISTRY)}), not an existing file or "
        f"folder, and not a hub id (owner/name)"
    )


def _read_files(files: SplitFiles, cfg: LoadConfig, entry: DatasetEntry | None) -> RawSplits:
    """Read every split file (``cfg.format`` overrides the files' format)."""
    fmt = cfg.format or files.format
    encoding = cfg.encoding or (entry.encoding if entry else "utf-8")
    notes: list[str] = []
    if fmt == "columns" and entry is not None and cfg.tag_column is None:
        note = layout_note(entry, files, cfg.separator, encoding)
        if note:
            notes.append(note)
    out: dict[str, list[Sentence]] = {}
    for split, path in files.paths.items():
        out[split] = list(_read_one(path, fmt, cfg, entry, encoding))
    return RawSplits(out, entry.scheme if entry else None, {split: fmt for split in out}, notes)


def _read_one(path: Path, fmt: str, cfg: LoadConfig, entry: DatasetEntry | None, encoding: str
              ) -> Iterator[Sentence]:
    if fmt == "pairs":
        return read_line_pairs(path / "seq.in", path / "seq.out", encoding=encoding)
    if fmt == "jsonl":
        return read_jsonl(path, encoding=encoding)
    token_column = cfg.token_column if cfg.token_column is not None else (entry.token_column if entry else 0)
    tag_column = cfg.tag_column if cfg.tag_column is not None else -1
    return read_columns(path, token_column=token_column, tag_column=tag_column, separator=cfg.separator,
                        encoding=encoding)
