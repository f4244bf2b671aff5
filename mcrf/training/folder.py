"""Stage 2 of ``train``: claim the run folder.

One run per folder (``mcrf.io.runfolder``'s lock, held by the main process until the run has
ended), a used folder refused unless ``--resume`` or ``--overwrite`` says what to do with it, and
a resumed run's ``last/`` checkpoint read and compared with the current settings, before any
data is loaded or anything is restored into a model.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

from mcrf.errors import InputNotFound
from mcrf.io import runfolder
from mcrf.training import checkpoint
from mcrf.training.config import TrainConfig
from mcrf.training.resume import check_resumable

__all__ = ["TRAIN_OUTPUTS", "STALE_ON_OVERWRITE", "claim_folder", "check_output_dir"]

#: every name ``train`` writes in its output folder: a folder holding any of them is refused
#: without overwrite (or resume); the user's other files are never touched.
TRAIN_OUTPUTS = tuple(f"{name}{suffix}" for name in ("last", "best", "model")
                      for suffix in ("", ".old", ".tmp", checkpoint.DELETING)) + (
    "train_log.jsonl", "metrics.json", "training_curves.png")
#: what overwrite removes when the run starts; ``model/``, ``metrics.json`` and the plot stay
#: usable until the new run replaces them atomically at its end.
STALE_ON_OVERWRITE = tuple(name for name in TRAIN_OUTPUTS if name not in ("model", "metrics.json",
                                                                          "training_curves.png"))


@contextlib.contextmanager
def claim_folder(config: TrainConfig, accelerator: Any) -> Iterator[Optional[Dict[str, Any]]]:
    """Hold ``config.output_dir`` for the run and check that the run may use it. Call on every process.

    Yields:
        The ``last/`` checkpoint's ``trainer_state.json`` when resuming (its settings already
        compared with ``config``), else ``None``.

    Raises:
        RunFolderBusy: another run holds the folder (its lock names the PID).
        RunFolderUsed: the folder holds a run's files and neither ``resume`` nor ``overwrite`` is set.
        InputNotFound: ``resume`` without a checkpoint.
        ConfigError: ``resume`` with settings that differ from the checkpoint's.
    """
    output_dir = Path(config.output_dir)
    lock = runfolder.hold(output_dir) if accelerator.is_main_process else contextlib.nullcontext()
    with lock:
        check_output_dir(config, output_dir)
        saved = checkpoint.read_last(output_dir) if config.resume else None
        if saved is not None:
            check_resumable(saved, config, output_dir)
        yield saved


def check_output_dir(config: TrainConfig, output_dir: Path) -> None:
    """Refuse a used folder without resume/overwrite, and a resume with nothing to resume.

    A run interrupted before its first ``last/`` checkpoint can only start over: both the
    plain rerun and ``--resume`` say ``--overwrite``, never each other. The messages name the
    flags (``--resume``, ``--overwrite``, ``--output``), as most runs start from the command line.
    """
    resumable = checkpoint.find_checkpoint(output_dir, "last") is not None
    if config.resume:
        if resumable:
            return
        found = runfolder.used_outputs(output_dir, TRAIN_OUTPUTS)
        if found:
            raise InputNotFound(f"nothing to resume in {output_dir}: it holds {', '.join(found)} but no checkpoint "
                                "(last/), the run stopped before its first one; pass --overwrite instead of --resume "
                                "to start over, or choose another --output")
        raise InputNotFound(f"nothing to resume in {output_dir}: no checkpoint (last/) there; drop --resume "
                            "to start a fresh run, or point --output at the interrupted run")
    if config.overwrite:
        return
    fix = ("pass --resume to continue it, --overwrite to start over, or choose another --output" if resumable else
           "it has no checkpoint to resume (last/); pass --overwrite to start over, or choose another --output")
    runfolder.require_unused(output_dir, TRAIN_OUTPUTS, fix=fix)
