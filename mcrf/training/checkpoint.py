"""Atomic checkpoints: ``last/`` (full training state, for resume) and ``best/`` (a saved Tagger).

Layout of ``output_dir``::

    last/            accelerator.save_state(...) + trainer_state.json (step, epoch, best F1, scheduler, ...)
    best/            Tagger.save_pretrained(...) of the best dev F1 so far
    model/           the final model (the best one, with dev and test metrics in its card)

Every directory is first written under a temporary name and then renamed into place
(``mcrf.io.files.replace_dir``); the previous version is moved to ``<name>.old`` for the instant
between the two renames and deleted afterwards. A run killed at any point therefore leaves either the old or the new
complete directory, never a half-written one (``find_checkpoint`` falls back to ``.old``). A directory is
deleted the same way round (``discard``): renamed to ``<name>.deleting`` first, so a kill mid-delete never
leaves a ``best/`` that looks complete but lacks its weights.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

from mcrf.errors import InputNotFound, ModelDirError
from mcrf.io.files import replace_dir, write_json
from mcrf.io.outputs import apply_umask


__all__ = ["save_last", "read_last", "restore_last", "find_checkpoint", "discard", "TRAINER_STATE", "ENCODER_DIR",
           "DELETING"]

TRAINER_STATE = "trainer_state.json"
#: Folder of ``last/`` holding the encoder's own files (``Encoder.save``), to rebuild it on resume.
ENCODER_DIR = "encoder"
#: suffix of a directory being deleted (``discard``): never a checkpoint, whatever is left of it
DELETING = ".deleting"
STATEFUL = "stateful"  # the key of the scheduler/sampler states in trainer_state.json
PathLike = Union[str, os.PathLike]


def find_checkpoint(output_dir: PathLike, name: str = "last") -> Optional[Path]:
    """The complete ``name`` directory in ``output_dir`` (or its ``.old`` left by a kill mid-swap)."""
    for candidate in (Path(output_dir) / name, Path(output_dir) / f"{name}.old"):
        if (candidate / TRAINER_STATE).is_file() or (candidate / "config.json").is_file():
            return candidate
    return None


def discard(output_dir: PathLike, name: str) -> None:
    """Delete ``name`` (and its ``.old``) from ``output_dir`` so that a kill never leaves half of one.

    Each is first renamed to ``<name>.deleting``, which ``find_checkpoint`` never returns, and
    deleted there; a kill mid-delete leaves only that, removed by the next ``discard``.
    """
    trash = Path(output_dir) / f"{name}{DELETING}"
    for path in (Path(output_dir) / name, Path(output_dir) / f"{name}.old", None):
        if trash.exists():
            shutil.rmtree(trash)
        if path is not None and path.exists():
            os.replace(path, trash)
            shutil.rmtree(trash)


def save_last(accelerator: Any, output_dir: PathLike, trainer_state: Dict[str, Any], encoder: Any,
              stateful: Sequence[Any] = ()) -> Path:
    """Save the full training state to ``output_dir/last`` atomically. Call on every process.

    Uses ``accelerator.save_state`` (model weights as safetensors, optimizer and each process's
    RNG states) into ``last.tmp``, adds ``trainer_state.json`` (with the ``state_dict()`` of each
    object of ``stateful``, e.g. the scheduler and the batch sampler, as JSON: Accelerate would
    pickle them, and unpickle them on resume without ``weights_only``) and renames it to ``last``.

    Args:
        accelerator: the run's ``accelerate.Accelerator``.
        output_dir: the run directory.
        trainer_state: JSON-serialisable counters (step, epoch, batches done, best F1, ...).
        encoder: the tagger's ``Encoder``; its files go to ``last/encoder`` and what its ``save``
            returns to ``trainer_state["encoder_state"]``.
        stateful: objects with JSON-serialisable ``state_dict()``/``load_state_dict()``.

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
        write_json(tmp / TRAINER_STATE, {**trainer_state, "encoder_state": encoder_state,
                                         STATEFUL: [obj.state_dict() for obj in stateful]})
        apply_umask(tmp)  # Accelerate's safetensors files are 0600: follow the umask like a saved model
        replace_dir(tmp, final)
    accelerator.wait_for_everyone()
    return final


def read_last(output_dir: PathLike) -> Dict[str, Any]:
    """The counters and settings saved with ``output_dir/last`` (``trainer_state.json``), restoring nothing.

    Read before ``restore_last`` so the settings can be compared with the current ones first.

    Raises:
        InputNotFound: no complete ``last`` checkpoint in ``output_dir``.
        ModelDirError: ``trainer_state.json`` is not readable JSON (names the file).
    """
    path = _last_dir(output_dir) / TRAINER_STATE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelDirError(_corrupt(path, error)) from error
    if not isinstance(state, dict):
        raise ModelDirError(_corrupt(path, f"expected a JSON object, got {type(state).__name__}"))
    return state


def restore_last(accelerator: Any, output_dir: PathLike, stateful: Sequence[Any] = ()) -> None:
    """Restore the state saved by ``save_last`` into the prepared objects and ``stateful``. Call on every process.

    Every file of the checkpoint is checked first (safetensors headers, the zip structure and
    CRCs of ``torch.save`` files, and their contents read as tensors and numbers only), so a
    truncated, corrupt or hostile file is named instead of failing deep inside Accelerate (which
    also skips unreadable RNG states silently). Nothing is ever unpickled freely: a pickle that
    asks for anything beyond tensors and numbers is refused, never run.

    Raises:
        InputNotFound: no complete ``last`` checkpoint in ``output_dir``.
        ModelDirError: a checkpoint file is truncated, corrupt or untrusted, this process's RNG
            state is missing, or the checkpoint lacks the ``stateful`` states (written by an older mcrf).
    """
    path = _last_dir(output_dir)
    for file in sorted(path.iterdir()):
        problem = _damage(file)
        if problem:
            raise ModelDirError(problem)
    rng = path / f"random_states_{accelerator.process_index}.pkl"
    if not rng.is_file():
        raise ModelDirError(f"cannot resume from {path}: it lacks {rng.name}, the random state of process "
                            f"{accelerator.process_index}, so the resumed run would not replay the interrupted one; "
                            "resume with as many processes as the run had, or pass --overwrite to start over")
    states = read_last(output_dir).get(STATEFUL)
    if not isinstance(states, list) or len(states) != len(stateful):
        raise ModelDirError(f"cannot resume from {path}: its {TRAINER_STATE} lacks the scheduler and sampler "
                            "states (written by an older mcrf); pass --overwrite to start over")
    accelerator.load_state(str(path))
    for obj, state in zip(stateful, states):
        obj.load_state_dict(state)


#: what Accelerate's ``random_states_<process>.pkl`` holds; without any of them it silently skips the file
_RNG_KEYS = ("random_state", "numpy_random_seed", "torch_manual_seed")


def _damage(file: Path) -> Optional[str]:
    """What is wrong with one checkpoint file, as the error's text (``None`` when it reads, or is not a kind we know)."""
    import pickle
    import zipfile

    if file.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(file), "pt") as handle:
                handle.keys()
        except (SafetensorError, OSError) as error:
            return _corrupt(file, error)
    elif file.suffix in (".bin", ".pkl", ".pt"):  # torch.save writes zip archives with CRCs
        try:
            with zipfile.ZipFile(file) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            return _corrupt(file, error)
        if bad is not None:
            return _corrupt(file, f"checksum mismatch in {bad}")
        from accelerate.utils import load

        try:  # what Accelerate's load_state reads next, read the same way (weights_only), tensors mapped lazily
            content = load(file, map_location="cpu", mmap=True)
        except pickle.UnpicklingError:  # its text advises weights_only=False: never repeated
            return (f"cannot resume: checkpoint file {file} is corrupt or untrusted: it holds Python objects other "
                    "than tensors and numbers, which mcrf never loads (nothing in it was run); resume from an intact "
                    "copy of the run folder, or pass --overwrite to start over")
        if file.name.startswith("random_states_") and not (
                isinstance(content, dict) and all(key in content for key in _RNG_KEYS)):
            return _corrupt(file, f"expected the random states {', '.join(_RNG_KEYS)}, got {type(content).__name__}")
    return None


def _corrupt(file: Path, problem: object) -> str:
    return (f"cannot resume: checkpoint file {file} is truncated or corrupt ({problem}); resume from an intact "
            "copy of the run folder, or pass --overwrite to start over")


def _last_dir(output_dir: PathLike) -> Path:
    path = find_checkpoint(output_dir, "last")
    if path is None or not (path / TRAINER_STATE).is_file():
        raise InputNotFound(
            f"expected a checkpoint to resume from in {Path(output_dir) / 'last'}, found none; "
            "start a fresh run without --resume (or point --output at the interrupted run)"
        )
    return path
