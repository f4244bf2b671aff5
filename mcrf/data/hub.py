"""Hugging Face ``datasets`` as a corpus source: a hub id or a local ``save_to_disk`` folder.

Tag names come from the ``ClassLabel`` feature of the tag column (never hard-coded); a
string tag column is read as is. ``datasets`` is imported lazily. ``cached`` and ``unreachable`` let a
caller skip the hub at once when it has no local copy of a dataset and cannot reach the hub: offline,
``datasets`` would spend tens of seconds retrying before it fails.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from mcrf.data.types import Sentence
from mcrf.errors import DataError, located

logger = logging.getLogger(__name__)

TAG_COLUMNS = ("ner_tags", "tags", "labels", "chunk_tags")
#: How ``datasets.load_dataset`` starts the RuntimeError it raises for a hub dataset that is a loading script.
_SCRIPT_REFUSED = "Dataset scripts are no longer supported"
SPLIT_ALIASES = {"train": "train", "validation": "dev", "valid": "dev", "dev": "dev", "test": "test"}

__all__ = ["TAG_COLUMNS", "hub_offline", "cached", "unreachable", "is_saved_dataset", "read_hub_dataset",
           "dataset_to_sentences"]


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` is set to a true value (``1``, ``on``, ``yes``, ``true``),
    read the way ``huggingface_hub`` reads it."""
    return any(os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
               for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def cached(repo_id: str) -> bool:
    """Whether a hub dataset has a copy in the local Hugging Face caches (``datasets``' or ``huggingface_hub``'s),
    found by folder name without importing either library."""
    home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE") or home / "datasets")
    hub_cache = Path(os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or home / "hub")
    owner, _, name = repo_id.rpartition("/")
    candidates = [datasets_cache / f"{owner}___{name}" if owner else datasets_cache / name,
                  hub_cache / f"datasets--{repo_id.replace('/', '--')}"]
    return any(candidate.is_dir() for candidate in candidates)


def unreachable(timeout: float = 3.0) -> str | None:
    """Why the hub cannot be reached now (``None`` when a TCP connection to its endpoint opens within ``timeout``
    seconds): ``HF_HUB_OFFLINE`` set, or the name or connection failing. Costs one connection attempt."""
    if hub_offline():
        return "HF_HUB_OFFLINE is set"
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        return f"{host}:{port} is unreachable ({error.strerror or type(error).__name__})"
    return None


def is_saved_dataset(path: Path) -> bool:
    """Whether ``path`` is a folder written by ``Dataset.save_to_disk``/``DatasetDict.save_to_disk``."""
    return path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file())


def read_hub_dataset(
    repo_or_path: str,
    *,
    config: str | None = None,
    revision: str | None = None,
    tag_column: str | None = None,
    tokens_column: str = "tokens",
) -> dict[str, list[Sentence]]:
    """Load every split of a hub dataset (or a local ``save_to_disk`` folder) as sentences.

    Args:
        repo_or_path: hub id such as ``"eriktks/conll2003"`` or a local folder.
        config: dataset configuration name (e.g. ``"nl"``), hub only.
        revision: hub revision, e.g. ``"refs/convert/parquet"``.
        tag_column: the tag column; ``None`` takes the first of ``TAG_COLUMNS`` present.
        tokens_column: the tokens column.

    Returns:
        Split name (``train``/``dev``/``test``; others keep their names) to sentences.
    """
    import datasets

    path = Path(repo_or_path)
    if path.exists():
        if not is_saved_dataset(path):
            raise DataError(located(
                path, None, "expected a `datasets` folder (the output of Dataset.save_to_disk), got a folder "
                "without dataset_dict.json or state.json; pass a folder of train/dev/test files instead"))
        loaded = datasets.load_from_disk(str(path))
    else:
        try:
            loaded = datasets.load_dataset(repo_or_path, config, revision=revision)
        except RuntimeError as err:  # `datasets` >= 4 refuses a hub dataset that is a loading script, with this text
            if not str(err).startswith(_SCRIPT_REFUSED):
                raise
            raise DataError(
                f"{repo_or_path}: expected a hub dataset stored as data files, got one that is a loading script, "
                f"which `datasets` no longer runs ({err}); download its data files and pass their folder, or use "
                f"a data-file copy of it on the hub") from err
    if isinstance(loaded, datasets.Dataset):
        loaded = {"train": loaded}
    out: dict[str, list[Sentence]] = {}
    for split_name, split in loaded.items():
        name = SPLIT_ALIASES.get(split_name, split_name)
        out[name] = list(dataset_to_sentences(split, f"{repo_or_path}[{split_name}]", tag_column, tokens_column))
    return out


def _tag_names(feature) -> list[str] | None:
    """ClassLabel names of a (sequence of) ClassLabel feature, ``None`` for string tags."""
    import datasets

    inner = getattr(feature, "feature", None)
    if inner is None and isinstance(feature, (list, tuple)) and feature:
        inner = feature[0]
    if isinstance(inner, datasets.ClassLabel):
        return list(inner.names)
    if isinstance(inner, datasets.Value) and inner.dtype in ("string", "large_string"):
        return None
    raise DataError(
        f"expected the tag column to be a sequence of ClassLabel or of strings, got {feature}; "
        f"cast it with dataset.cast_column(column, Sequence(ClassLabel(names=[...])))"
    )


def dataset_to_sentences(
    split, where: str, tag_column: str | None = None, tokens_column: str = "tokens"
) -> Iterator[Sentence]:
    """Turn one ``datasets.Dataset`` into sentences (``source`` is ``where:row``, 1-based)."""
    columns: Sequence[str] = split.column_names
    if tokens_column not in columns:
        raise DataError(located(where, None, f"expected a {tokens_column!r} column, got {list(columns)}; "
                                             "pass tokens_column"))
    if tag_column is None:
        tag_column = next((c for c in TAG_COLUMNS if c in columns), None)
        if tag_column is None:
            raise DataError(located(where, None, f"expected one of the tag columns {list(TAG_COLUMNS)}, got "
                                                 f"{list(columns)}; pass tag_column"))
    elif tag_column not in columns:
        raise DataError(located(where, None, f"expected a tag column {tag_column!r}, got {list(columns)}; "
                                             "pass one of those"))
    names = _tag_names(split.features[tag_column])
    for row, (tokens, tags) in enumerate(zip(split[tokens_column], split[tag_column]), start=1):
        if names is not None:
            bad = [t for t in tags if not 0 <= t < len(names)]
            if bad:
                raise DataError(located(where, row, f"expected tag ids below {len(names)} (the ClassLabel "
                                                    f"names), got {bad[0]}; fix the dataset's tag column"))
            tags = [names[t] for t in tags]
        if len(tags) != len(tokens):
            raise DataError(located(where, row, f"expected {len(tokens)} tags (one per token), got {len(tags)}; "
                                                "fix the dataset row"))
        if tokens:
            yield Sentence(tuple(tokens), tuple(tags), f"{where}:{row}")
