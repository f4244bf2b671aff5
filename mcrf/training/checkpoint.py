"""Atomic checkpoints: ``last/`` (full training state, for resume) and ``best/`` (a saved Tagger).

Layout of ``output_dir``::

    last/            accelerator.save_state(...) + trainer_state.json (step, epoch, best F1, ...)
    best/            Tagger.save_pretrained(...) of the best dev F1 so far
    model/           the final model (the best one, with dev and test metrics in its card)

Every directory is first written under a temporary name and then renamed into place
(``mcrf.files.replace_dir``); the previous version is moved to ``<name>.old`` for the instant
between the two renames and deleted afterwards. A run killed at any point therefore leaves either the old or the new
complete directory, never a half-written one (``find_checkpoint`` falls back to ``.old``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Optional, Union

from mcrf.files import replace_dir, write_json
from mcrf.outputs import apply_umask


__all__ = ["save_last", "read_last", "restore_last", "find_checkpoint", "TRAINER_STATE", "ENCODER_DIR"]

TRAINER_STATE = "trainer_state.json"
#: Folder of ``last/`` holding the encoder's own files (``Encoder.save``), to rebuild it on resume.
ENCODER_DIR = "encoder"
PathLike = Union[str, os.PathLike]


def find_checkpoint(output_dir: PathLike, name: str = "last") -> Optional[Path]:
    """The complete ``name`` directory in ``output_dir`` (or its ``.old`` left by a kill mid-swap)."""
    for candidate in (Path(output_dir) / name, Path(output_dir) / f"{name}.old"):
        if (candidate / TRAINER_STATE).is_file() or (candidate / "config.json").is_file():
            return candidate
    return None


def save_last(accelerator: Any, output_dir: PathLike, trainer_state: Dict[str, Any], encoder: Any) -> Path:
    """Save the full training state to ``output_dir/last`` atomically. Call on every process.

    Uses ``accelerator.save_state`` (model weights as safetensors, optimizer, registered objects
    such as the scheduler and the batch sampler, and each process's RNG states) into
    ``last.tmp``, adds ``trainer_state.json`` and renames it to ``last``.

    Args:
        accelerator: the run's ``accelerate.Accelerator``.
        output_dir: the run directory.
        trainer_state: JSON-serialisable counters (step, epoch, batches done, best F1, ...).
        encoder: the tagger's ``Encoder``; its files go to ``last/encoder`` and what its ``save``
            returns to ``trainer_state["encoder_state"]``.

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
        (tmp / ENCODER_DIR).mkdir()
        encoder_state = encoder.save(tmp / ENCODER_DIR)
        write_json(tmp / TRAINER_STATE, {**trainer_state, "encoder_state": encoder_state})
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
