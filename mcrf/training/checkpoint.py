"""Atomic checkpoints: ``last/`` (full training state, for resume) and ``best/`` (a saved Tagger).

Layout of ``output_dir``::

    last/            accelerator.save_state(...) + trainer_state.json (step, epoch, best F1, ...)
    best/            Tagger.save_pretrained(...) of the best dev F1 so far
    model/           the final model (the best one, with dev and test metrics in its card)

Every directory is first written under a temporary name (``<name>.tmp``) and then renamed into
place; the previous version is moved to ``<name>.old`` for the instant between the two renames
and deleted afterwards. A run killed at any point therefore leaves either the old or the new
complete directory, never a half-written one (``find_checkpoint`` falls back to ``.old``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union

from mcrf.outputs import apply_umask

logger = logging.getLogger(__name__)

__all__ = ["replace_dir", "save_last", "read_last", "restore_last", "find_checkpoint", "save_tagger", "TRAINER_STATE"]

TRAINER_STATE = "trainer_state.json"
PathLike = Union[str, os.PathLike]


def replace_dir(tmp: PathLike, final: PathLike) -> None:
    """Atomically move the complete directory ``tmp`` to ``final`` (replacing any old one).

    Both must be on the same filesystem. Single-process: call on the main process only. A kill
    at any point leaves a complete ``final`` or ``<final>.old`` (``find_checkpoint`` takes either):
    ``old`` is only deleted while a complete ``final`` exists.
    """
    tmp, final = Path(tmp), Path(final)
    old = final.with_name(final.name + ".old")
    if not final.exists():
        # A kill between the two renames of an earlier swap left the only complete copy in
        # ``old``: put the new one in place first, then drop ``old``.
        os.replace(tmp, final)
        if old.exists():
            shutil.rmtree(old)
        return
    if old.exists():  # stale: ``final`` is complete
        shutil.rmtree(old)
    os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old)


def find_checkpoint(output_dir: PathLike, name: str = "last") -> Optional[Path]:
    """The complete ``name`` directory in ``output_dir`` (or its ``.old`` left by a kill mid-swap)."""
    for candidate in (Path(output_dir) / name, Path(output_dir) / f"{name}.old"):
        if (candidate / TRAINER_STATE).is_file() or (candidate / "config.json").is_file():
            return candidate
    return None


def save_last(accelerator: Any, output_dir: PathLike, trainer_state: Dict[str, Any]) -> Path:
    """Save the full training state to ``output_dir/last`` atomically. Call on every process.

    Uses ``accelerator.save_state`` (model weights as safetensors, optimizer, registered objects
    such as the scheduler and the batch sampler, and each process's RNG states) into
    ``last.tmp``, adds ``trainer_state.json`` and renames it to ``last``.

    Args:
        accelerator: the run's ``accelerate.Accelerator``.
        output_dir: the run directory.
        trainer_state: JSON-serialisable counters (step, epoch, batches done, best F1, ...).

    Returns:
        The path of ``last``.
    """
    output_dir = Path(output_dir)
    tmp, final = output_dir / "last.tmp", output_dir / "last"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / TRAINER_STATE).write_text(json.dumps(trainer_state, indent=2), encoding="utf-8")
        apply_umask(tmp)  # Accelerate's safetensors files are 0600: follow the umask like a saved model
        replace_dir(tmp, final)
    accelerator.wait_for_everyone()
    return final


def read_last(output_dir: PathLike) -> Dict[str, Any]:
    """The counters and settings saved with ``output_dir/last`` (``trainer_state.json``), restoring nothing.

    Read before ``restore_last`` so the settings can be compared with the current ones first.

    Raises:
        FileNotFoundError: no complete ``last`` checkpoint in ``output_dir`` (says how to start fresh).
    """
    return json.loads((_last_dir(output_dir) / TRAINER_STATE).read_text(encoding="utf-8"))


def restore_last(accelerator: Any, output_dir: PathLike) -> None:
    """Restore the state saved by ``save_last`` into the prepared objects. Call on every process.

    Raises:
        FileNotFoundError: no complete ``last`` checkpoint in ``output_dir``.
    """
    accelerator.load_state(str(_last_dir(output_dir)))


def _last_dir(output_dir: PathLike) -> Path:
    path = find_checkpoint(output_dir, "last")
    if path is None or not (path / TRAINER_STATE).is_file():
        raise FileNotFoundError(
            f"expected a checkpoint to resume from in {Path(output_dir) / 'last'}, found none; "
            "start a fresh run without resume (or point output_dir at the interrupted run)"
        )
    return path


def save_tagger(
    save: Callable[[Path], None], output_dir: PathLike, name: str
) -> Path:
    """Write a model directory atomically: ``save(tmp_dir)`` then rename to ``output_dir/name``.

    Main process only. ``save`` is e.g. ``lambda d: tagger.save_pretrained(d, metrics)``.
    """
    output_dir = Path(output_dir)
    tmp, final = output_dir / f"{name}.tmp", output_dir / name
    if tmp.exists():
        shutil.rmtree(tmp)
    save(tmp)
    replace_dir(tmp, final)
    logger.debug("wrote %s", final)
    return final
