"""Named datasets and the resolution of a name or path to split files (or a hub dataset).

Resolution of a registered name: ``data_dir`` (``--data-dir``), or when it is not given the
environment variable ``MCRF_DATA_DIR``; either may hold a ``<name>/`` folder with the corpus files (searched first) or the
files directly (not for the bundled ``sample``, whose generic names would match anything).
Then the Hugging Face hub ids of the entry, in turn. A path (directory or file) is read by
conventional split names. When nothing is found the error says where to put which files.

Column corpora take their tags from the *last* column, whatever the release: CoNLL-2002 Spanish
is two columns at its origin and three (``token POS NER``) as NLTK and most mirrors ship it. An
entry's ``columns`` describes the original layout; ``layout_note`` says once when the files
have another.
"""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass, field
from pathlib import Path

from mcrf.data.hub import hub_offline
from mcrf.data.readers import Traversable, column_count
from mcrf.errors import DataError, InputNotFound, located

ENV_VAR = "MCRF_DATA_DIR"
SPLIT_NAMES: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "dev": ("dev", "valid", "validation", "testa", "val"),
    "test": ("test", "testb"),
}
EXTENSIONS = ("", ".txt", ".conll", ".tsv", ".bio", ".bmes", ".iob", ".iob2", ".jsonl", ".json")

__all__ = [
    "ENV_VAR", "SPLIT_NAMES", "EXTENSIONS", "HubSource", "DatasetEntry", "REGISTRY", "SplitFiles",
    "sample_dir", "find_local", "find_split_files", "layout_note", "split_of",
]


@dataclass(frozen=True)
class HubSource:
    """A Hugging Face hub dataset: id, optional config name and revision, tag column."""

    repo_id: str
    config: str | None = None
    revision: str | None = None
    tag_column: str = "ner_tags"


@dataclass(frozen=True)
class DatasetEntry:
    """A named dataset: its local files per split, format, columns and native scheme.

    ``files`` maps a split to its file name (format ``columns``/``jsonl``) or to its folder
    holding ``seq.in``/``seq.out`` (format ``pairs``). ``columns`` names the columns of the
    original release (format ``columns``); the tag is read from the last column of the files
    whatever their count, unless the user passes a tag column.
    """

    name: str
    description: str
    format: str
    files: dict[str, str]
    scheme: str
    columns: tuple[str, ...] = ("token", "tag")
    token_column: int = 0
    encoding: str = "utf-8"
    hub: tuple[HubSource, ...] = ()
    folder: str = ""

    @property
    def folders(self) -> tuple[str, ...]:
        """Sub-folder names searched under a data root: the name, then the shared folder if any."""
        return (self.name, self.folder) if self.folder else (self.name,)


@dataclass(frozen=True)
class SplitFiles:
    """Resolved local data: split name to its path (a ``Traversable`` for package data in a zip), and
    the format to read it with."""

    paths: dict[str, Path | Traversable]
    format: str
    origin: str = ""
    extra: dict[str, str] = field(default_factory=dict)


_CONLL02 = "https://www.clips.uantwerpen.be/conll2002/ner/"
REGISTRY: dict[str, DatasetEntry] = {
    e.name: e
    for e in [
        DatasetEntry("sample", "bundled synthetic English NER corpus (PER/LOC/ORG/MISC), Apache-2.0", "columns",
                     {"train": "train.txt", "dev": "dev.txt", "test": "test.txt"}, "BIO"),
        DatasetEntry("conll2003", "CoNLL-2003 English NER, original IOB1 files `token POS chunk NER`", "columns",
                     {"train": "eng.train", "dev": "eng.testa", "test": "eng.testb"}, "IOB1",
                     columns=("token", "POS", "chunk", "NER"),
                     hub=(HubSource("lhoestq/conll2003"),
                          HubSource("eriktks/conll2003", revision="refs/convert/parquet"))),
        DatasetEntry("conll2000", "CoNLL-2000 chunking `token POS chunk` (no dev split)", "columns",
                     {"train": "train.txt", "test": "test.txt"}, "BIO", columns=("token", "POS", "chunk"),
                     hub=(HubSource("eriktks/conll2000", revision="refs/convert/parquet", tag_column="chunk_tags"),)),
        DatasetEntry("conll2002-nl", f"CoNLL-2002 Dutch NER `token POS NER`, latin-1 ({_CONLL02})", "columns",
                     {"train": "ned.train", "dev": "ned.testa", "test": "ned.testb"}, "BIO",
                     columns=("token", "POS", "NER"),
                     encoding="latin-1", folder="conll2002",
                     hub=(HubSource("eriktks/conll2002", config="nl", revision="refs/convert/parquet"),)),
        DatasetEntry("conll2002-es", f"CoNLL-2002 Spanish NER `token NER` (NLTK: `token POS NER`), latin-1 "
                     f"({_CONLL02})", "columns",
                     {"train": "esp.train", "dev": "esp.testa", "test": "esp.testb"}, "BIO", columns=("token", "NER"),
                     encoding="latin-1", folder="conll2002",
                     hub=(HubSource("eriktks/conll2002", config="es", revision="refs/convert/parquet"),)),
        DatasetEntry("wnut17", "WNUT-17 emerging entities `token<TAB>tag`", "columns",
                     {"train": "wnut17train.conll", "dev": "emerging.dev.conll", "test": "emerging.test.annotated"},
                     "BIO",
                     hub=(HubSource("leondz/wnut_17", revision="refs/convert/parquet"),)),
        DatasetEntry("atis", "ATIS slot filling (SlotGated-SLU split), seq.in/seq.out", "pairs",
                     {"train": "train", "dev": "valid", "test": "test"}, "BIO"),
        DatasetEntry("snips", "SNIPS slot filling (SlotGated-SLU split), seq.in/seq.out", "pairs",
                     {"train": "train", "dev": "valid", "test": "test"}, "BIO"),
        DatasetEntry("resume", "Resume Chinese NER, characters, BIO (Masked CRF authors' version)", "columns",
                     {"train": "train.char.bio", "dev": "dev.char.bio", "test": "test.char.bio"}, "BIO",
                     columns=("char", "tag")),
        DatasetEntry("resume-bmes", "Resume Chinese NER, characters, BMES (LatticeLSTM release)", "columns",
                     {"train": "train.char.bmes", "dev": "dev.char.bmes", "test": "test.char.bmes"}, "BMES",
                     columns=("char", "tag"), folder="resume"),
    ]
}


def sample_dir() -> Traversable:
    """The bundled sample corpus, package data of ``mcrf.data`` (``mcrf/data/sample/``).

    Read through ``importlib.resources``, so it is found wherever the package is: a source
    checkout, site-packages, a ``--user`` install, a zip archive (then it is a ``Traversable``,
    not a ``Path``; the readers open it as such).
    """
    return importlib.resources.files("mcrf.data") / "sample"


def _entry_paths(entry: DatasetEntry, folder: Traversable) -> dict[str, Traversable] | None:
    """Split paths of ``entry`` inside ``folder`` if its train file (or folder) is there."""
    paths = {split: folder / name for split, name in entry.files.items()}

    def present(path: Traversable) -> bool:
        return path.is_file() or path.is_dir()

    if not present(paths["train"]):
        return None
    return {split: path for split, path in paths.items() if present(path)}


def find_local(entry: DatasetEntry, data_dir: str | None) -> tuple[SplitFiles | None, list[str]]:
    """Find a registered dataset's files locally.

    Returns:
        The resolved files (or ``None``) and the list of folders that were searched.
    """
    searched: list[str] = []
    # an explicit --data-dir is the only place searched: falling back to $MCRF_DATA_DIR would read
    # another copy of the corpus than the one the user named, without a word
    roots = [("--data-dir", data_dir)] if data_dir else [(ENV_VAR, os.environ.get(ENV_VAR))]
    for origin, root in roots:
        if not root:
            continue
        if Path(root).is_file():
            searched.append(f"{root} ({origin}: a file, not a folder; pass the folder that holds the corpus files)")
            continue
        # sub-folders first; the root itself only for real corpora (the bundled sample's generic
        # file names would otherwise match any folder holding a train.txt)
        folders = [Path(root) / sub for sub in entry.folders] + ([Path(root)] if entry.name != "sample" else [])
        for folder in folders:
            searched.append(f"{folder} ({origin})")
            paths = _entry_paths(entry, folder)
            if paths:
                return SplitFiles(paths, entry.format, f"{folder} ({origin})"), searched
    if entry.name == "sample":
        folder = sample_dir()
        paths = _entry_paths(entry, folder)
        if paths:
            return SplitFiles(paths, entry.format, str(folder)), searched
        searched.append(f"{folder} (the package data of mcrf.data; reinstall mcrf)")
    return None, searched


def layout_note(entry: DatasetEntry, files: SplitFiles, separator: str | None, encoding: str) -> str | None:
    """One sentence when the files' column count differs from ``entry.columns`` (``None`` when equal).

    Reads the first token line of each split file. The tags are read from the last column either
    way; the note tells the user so, once per corpus, and how to choose another column.
    """
    for split, path in files.paths.items():
        count, line = column_count(path, separator, encoding)
        if count and count != len(entry.columns):
            return (f"{entry.name}: {path}:{line} has {count} columns where the registry describes "
                    f"{len(entry.columns)} (`{' '.join(entry.columns)}`); tags are read from the last column "
                    f"({count - 1}, counting from 0); pass --tag-column to read another")
    return None


def split_of(name: str) -> str | None:
    """The split a file or folder name stands for, by convention (``eng.testa`` → ``dev``).

    >>> split_of("valid.txt"), split_of("eng.testb"), split_of("train.char.bio"), split_of("notes.md")
    ('dev', 'test', 'train', None)
    """
    lowered = name.lower()
    parts = lowered.replace("-", ".").replace("_", ".").split(".")
    for split, names in SPLIT_NAMES.items():
        if any(part in names for part in parts):
            return split
    return None


def find_split_files(path: Path) -> SplitFiles:
    """Split files of a plain directory (or one file) by conventional names.

    A directory with ``train/seq.in`` (and ``seq.out``) holds line-aligned pairs; otherwise
    files named like ``train``/``dev|valid|validation|testa``/``test|testb`` with extensions
    ``.txt .conll .tsv .bio .bmes .jsonl`` ... A single file becomes the split its name says
    (``train`` when it says none).

    Raises:
        InputNotFound: the directory holds no train/dev/test files.
        DataError: two files claim the same split, or the files mix formats.
    """
    if path.is_file():
        return SplitFiles({split_of(path.name) or "train": path}, _format_of(path), str(path))
    pairs = {split_of(child.name): child for child in sorted(path.iterdir())
             if child.is_dir() and (child / "seq.in").is_file() and (child / "seq.out").is_file()}
    pairs.pop(None, None)
    if pairs:
        return SplitFiles(pairs, "pairs", str(path))
    found: dict[str, Path] = {}
    for child in sorted(path.iterdir()):
        suffix = child.suffix.lower()
        if not child.is_file() or not (suffix in EXTENSIONS or split_of(suffix.lstrip("."))):
            continue
        split = split_of(child.name)
        if split is None:
            continue
        if split in found:
            raise DataError(located(
                path, None, f"expected one file per split, got both {found[split].name} and {child.name} "
                f"looking like the {split} split; keep one of them or point at a single file"))
        found[split] = child
    if not found:
        raise InputNotFound(located(
            path, None, f"expected files named train / dev|valid|validation|testa / test|testb with an "
            f"extension among {', '.join(e for e in EXTENSIONS if e)} (or none), or folders train/ valid/ test/ "
            f"holding seq.in and seq.out, got no split files; rename the files or point at one file"))
    formats = {_format_of(p) for p in found.values()}
    if len(formats) > 1:
        raise DataError(located(path, None, f"expected split files of one format, got a mix of "
                                            f"{sorted(formats)}; keep files of one format in the folder"))
    return SplitFiles(found, formats.pop(), str(path))


def _format_of(path: Path) -> str:
    return "jsonl" if path.suffix.lower() in (".jsonl", ".json") else "columns"


def missing_message(entry: DatasetEntry, searched: list[str], hub_errors: list[str]) -> str:
    """The error for a registered dataset found nowhere, on one line: where mcrf looked, why the hub gave
    nothing, and where to put which files."""
    layout = ", ".join(
        f"{split}: {name}/seq.in + {name}/seq.out" if entry.format == "pairs" else f"{split}: {name}"
        for split, name in entry.files.items()
    )
    lines = [
        f"dataset {entry.name!r} ({entry.description}) was not found:",
        "looked in " + ("; ".join(searched) if searched else f"no local folder (no --data-dir given, {ENV_VAR} unset)")
        + ".",
    ]
    if hub_errors:
        hint = " (HF_HUB_OFFLINE is set)" if hub_offline() else ""
        lines.append(f"Hugging Face hub{hint}: " + "; ".join(hub_errors) + ".")
    lines.append(f"Put its files ({layout}) in a folder DIR/{entry.folders[-1]}/ (or DIR itself) and pass "
                 f"--data-dir DIR or set {ENV_VAR}=DIR.")
    return " ".join(lines)
