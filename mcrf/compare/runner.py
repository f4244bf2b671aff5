"""``CompareConfig`` and ``compare(config)``: every (objective, seed) cell in turn, finished ones kept.

Folder layout (``config.output_dir``)::

    compare.json            the settings every cell shares (checked when the comparison is re-run)
    cells/<objective>-seed<N>/  an ``mcrf train`` run folder + cell.json once the cell is finished
    results.json, results.md, results.png   rewritten after the cells (see ``mcrf.compare.report``)

Re-running with the same arguments skips finished cells and resumes an interrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from mcrf.io import runfolder
from mcrf.compare import cells, report
from mcrf.compare.variants import DEFAULT_VARIANTS, VARIANTS, objectives_of, parse_variants
from mcrf.errors import ConfigError
from mcrf.fields import integer, option, seed as seed_range, validate
from mcrf.training import TrainConfig

__all__ = ["CompareConfig", "compare", "SETTINGS_FILE", "COMPARE_OUTPUTS", "PER_CELL_FIELDS"]

logger = logging.getLogger(__name__)

SETTINGS_FILE = "compare.json"
#: How ``compare.json`` records settings: 3 = ``TrainConfig`` with layered defaults, resolved, the encoder's
#: options in ``encoder_options`` (format 2 had the sub-word window as top-level fields; format 1, without the
#: key, kept unresolved defaults such as ``dropout: None``).
SETTINGS_FORMAT = 3
#: what a comparison writes besides ``compare.json``: a folder holding any of them without a
#: ``compare.json`` is refused (it is not a comparison that can be continued).
COMPARE_OUTPUTS = ("cells", "results.json", "results.md", "results.png")
#: ``TrainConfig`` fields set per cell, or free to differ between runs of one comparison (they
#: change where or how fast it runs, not what it computes). All others must match ``compare.json``.
PER_CELL_FIELDS = frozenset(cells.SET_PER_CELL) | {"data_dir", "eval_batch_size", "num_workers", "cpu"}


def _check_seeds(name: str, value: Any) -> Tuple[int, ...]:
    """One or more distinct seeds, each in the range every random generator takes, as a tuple."""
    seeds = tuple(value) if isinstance(value, (tuple, list)) else ()
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds) \
            or len(set(seeds)) != len(seeds):
        raise ConfigError(f"expected {name} to be one or more distinct integer seeds, got {value!r}; e.g. --seeds 1,2,3")
    for seed in seeds:
        seed_range()(name, seed)
    return seeds


def _seeds(text: str) -> Tuple[int, ...]:
    """``1,2,3`` -> ``(1, 2, 3)`` (command-line text of ``CompareConfig.seeds``)."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"expected comma-separated integer seeds such as 1,2,3, got {text!r}") from None


def _variants(name: str, value: Any) -> Tuple[str, ...]:
    return parse_variants(value)


@dataclass
class CompareConfig:
    """Defaults of ``mcrf compare`` (the CLI builds its own flags from these fields)."""

    dataset: str = option("sample", cli=False, help="dataset name or path, as for mcrf train")
    seeds: Tuple[int, ...] = option((1, 2, 3), parse=_seeds, check=_check_seeds, metavar="1,2,3", help=(
        "training seeds, comma-separated; each trains every objective once"))
    variants: Tuple[str, ...] = option(DEFAULT_VARIANTS, check=_variants, parse=str, metavar="VARIANTS", help=(
        f"variants to report, comma-separated, from {', '.join(VARIANTS)}; the objectives they need are trained"))
    output_dir: str = option("runs/compare", metavar="DIR", help=(
        "the comparison's folder (cells, results.md/json/png)"))
    resamples: int = option(10000, check=integer(100), help="randomizations and bootstrap draws of the paired tests")
    train: Dict[str, Any] = option(default_factory=dict, cli=False, help=(
        "TrainConfig values shared by every cell (the flags of mcrf train), on top of "
        "TrainConfig.for_dataset(dataset)"))

    def __post_init__(self) -> None:
        validate(self)
        taken = sorted(set(self.train) & set(cells.SET_PER_CELL))
        if taken:
            raise ConfigError(f"compare sets {taken} itself (per cell); drop them from the training settings "
                              "(--variants picks decoders and post-processing, --seeds the seeds)")

    def train_config(self) -> TrainConfig:
        """The shared training settings (``decoder``/``seed``/``output_dir`` are set per cell)."""
        try:
            return TrainConfig.for_dataset(self.dataset, **self.train)
        except (TypeError, ValueError) as error:
            raise ConfigError(str(error)) from error


def _shared(config: TrainConfig) -> Dict[str, Any]:
    return {k: v for k, v in config.to_dict().items() if k not in PER_CELL_FIELDS}


def _check_settings(folder: Path, config: CompareConfig, base: TrainConfig) -> None:
    """Write ``compare.json``, or check that the current settings match the saved ones.

    Settings saved in the same ``SETTINGS_FORMAT`` must match (shared fields); a ``compare.json``
    of another format (an mcrf whose ``TrainConfig`` resolves or names settings differently) cannot
    be compared field by field, so its differences are named in a warning and the comparison
    continues with the settings of now.
    """
    from mcrf.io.files import write_json

    settings = {"format": SETTINGS_FORMAT, "dataset": config.dataset, "train": _shared(base)}
    path = folder / SETTINGS_FILE
    if not path.is_file():
        runfolder.require_unused(folder, COMPARE_OUTPUTS, fix="they are not from a comparison this version of "
                                 "mcrf can continue; choose another --output or move them away")
        write_json(path, settings)
        return
    saved = json.loads(path.read_text(encoding="utf-8"))
    then, now = saved.get("train", {}), settings["train"]
    differ = [f"{k}: {then.get(k, '<absent>')!r} (saved) != {now.get(k, '<absent>')!r} (now)"
              for k in sorted(set(then) | set(now)) if then.get(k, "<absent>") != now.get(k, "<absent>")]
    if saved.get("dataset") != config.dataset:
        raise ConfigError(f"{folder} holds a comparison of dataset {saved.get('dataset')!r}, not "
                          f"{config.dataset!r}; pass another --output")
    if differ and saved.get("format", 1) != SETTINGS_FORMAT:
        logger.warning("%s was written by an mcrf that records settings differently (format %s, now %s); "
                       "continuing with the settings of now. They differ in: %s", path,
                       saved.get("format", 1), SETTINGS_FORMAT, "; ".join(differ))
    elif differ:
        raise ConfigError(f"{folder} holds a comparison with other settings: {'; '.join(differ)}; re-run "
                          "with its settings to continue it, or pass another --output")


@contextlib.contextmanager
def _quiet_cell_logs() -> Iterator[None]:
    """While a cell trains, its training and data loggers say only warnings (unless debug logging is on):
    each cell would otherwise repeat the 40-line settings header and the corpus notes."""
    names = ("mcrf.training", "mcrf.data")
    loggers = [logging.getLogger(name) for name in names]
    levels = [each.level for each in loggers]
    for each in loggers:
        if not each.isEnabledFor(logging.DEBUG):
            each.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for each, level in zip(loggers, levels):
            each.setLevel(level)


def _splits(base: TrainConfig) -> Dict[str, List[Any]]:
    """train/dev/test sentences exactly as ``train`` selects them (its own ``select_splits``)."""
    from mcrf.data import load_corpus
    from mcrf.training.preflight import select_splits, used_splits

    train, dev, test = select_splits(load_corpus(base.dataset, config=base.load_config(), used=used_splits(base)),
                                     base)
    return {"train": train, "dev": dev, "test": test}


def compare(config: CompareConfig, command: Optional[str] = None) -> Dict[str, Any]:
    """Run (or continue) a comparison and write its results.

    Args:
        config: what to compare.
        command: the command line to record in the results (``None``: the library call).

    Returns:
        The ``results.json`` content.

    Raises:
        ConfigError: bad settings, or an output folder holding a comparison with other settings.
        RunFolderBusy: another process is running a comparison in ``config.output_dir``.
        RunFolderUsed: ``config.output_dir`` holds results or cells but no ``compare.json``.
    """
    base = config.train_config()
    folder = Path(config.output_dir)
    with runfolder.hold(folder):  # one comparison per folder (the cells' train runs lock their own)
        _check_settings(folder, config, base)
        return _run(config, base, folder, command)


def _run(config: CompareConfig, base: TrainConfig, folder: Path, command: Optional[str]) -> Dict[str, Any]:
    """The cells in order (seed by seed, so finished seeds are complete), then the results.

    Logs the shared settings once and one line per cell; each cell's own training log (its settings
    header, evaluations) is left out unless debug logging is on.
    """
    from tqdm.auto import tqdm

    splits = _splits(base)
    todo = [(objective, seed) for seed in config.seeds for objective in objectives_of(config.variants)]
    logger.info("%s\n  train/dev/test sentences  %d/%d/%d\n  cells                     %d (%s) in %s",
                base.header(), len(splits["train"]), len(splits["dev"]), len(splits["test"]), len(todo),
                ", ".join(cells.cell_name(objective, seed) for objective, seed in todo), folder / "cells")
    records = []
    # Off when stderr is no terminal: the cells' training bars would nest under it, and nested bars move
    # the cursor with escapes (ESC [A) that a log file shows as garbage.
    bar = tqdm(todo, desc="compare cells", unit="cell", dynamic_ncols=True, disable=not sys.stderr.isatty())
    for number, (objective, seed) in enumerate(bar, 1):
        name = cells.cell_name(objective, seed)
        bar.set_postfix_str(name)
        cell_folder = folder / "cells" / name
        record = cells.read_cell(cell_folder)
        if record is None:
            cell_config = dataclasses.replace(base, decoder=objective, seed=seed, output_dir=str(cell_folder))
            with _quiet_cell_logs():
                record = cells.run_cell(cell_config, splits, cell_folder)
            logger.info("cell %s (%d/%d): %s", name, number, len(todo), cells.describe(record))
        else:
            logger.info("cell %s: finished before, kept (%d/%d)", name, number, len(todo))
        records.append(record)
    bar.close()
    sizes = {name: len(sentences) for name, sentences in splits.items()}
    results = report.build_results(config, base, records, sizes, command=command)
    report.write_results(folder, results)
    return results
