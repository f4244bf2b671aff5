"""``train(config)``: one training run as five stages, called in order.

1. ``resolve_settings`` (here): the validated settings and the Accelerator (device, precision, processes);
2. ``claim_folder`` (``folder.py``): the run-folder lock, the used-folder guard, the resumed checkpoint's settings;
3. ``restore_or_build`` (``build.py``): data, model, loader, optimizer, schedule; ``last/`` restored, or the
   folder cleared for a fresh run;
4. ``fit`` (``fit.py``): the epoch/step loop, dev evaluations, ``best/`` and ``last/``;
5. ``finish`` (``finish.py``): the best model on dev and test, ``model/``, ``metrics.json``, the plot.

Works unchanged in one process, under ``accelerate launch`` and under ``torchrun`` (Accelerate
reads the launcher's environment; on CPU it uses the gloo backend). Every process runs every
stage; only the main process writes files (apart from the per-process RNG states Accelerate
stores inside the ``last/`` checkpoint) and shows the progress bar.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Iterator, Optional

import torch

from mcrf.errors import ConfigError
from mcrf.training.build import restore_or_build
from mcrf.training.config import TrainConfig
from mcrf.training.finish import TrainResult, finish
from mcrf.training.fit import fit
from mcrf.training.folder import claim_folder

__all__ = ["train", "resolve_settings"]


def train(config: TrainConfig, *, progress: Optional[bool] = None) -> TrainResult:
    """Train a tagger as configured; return where the model and metrics are.

    Loads the corpus (``mcrf.data.load_corpus``), builds the ``Tagger``, trains with AdamW
    (LLRD, warmup/decay, clipping) on length-bucketed batches through Accelerate, evaluates on the
    whole dev set every epoch or ``eval_every`` steps, keeps the best model (``best/``), stops early
    after ``patience`` evaluations without improvement, checkpoints ``last/`` for ``resume``, and
    finally writes ``model/`` (the best model, its card with dev/test metrics), ``metrics.json``,
    ``train_log.jsonl`` and ``training_curves.png`` into ``config.output_dir``.

    Args:
        config: a validated ``TrainConfig``.
        progress: show a progress bar; ``None``: when stderr is a terminal (``mcrf train -q``: never).

    Returns:
        ``TrainResult`` (identical on every process).

    Raises:
        RunFolderBusy: another run holds ``output_dir`` (its lock names the PID).
        RunFolderUsed: ``output_dir`` holds files a run writes and neither ``resume`` nor ``overwrite`` is set.
        InputNotFound: ``resume`` without a checkpoint; missing corpus files.
        TrainingDiverged: parameters became non-finite (checked at each evaluation).
        ValueError: bad settings or a corpus without train/dev sentences.
    """
    accelerator = resolve_settings(config)
    with claim_folder(config, accelerator) as saved:
        run = restore_or_build(config, accelerator, saved)
        started = time.perf_counter()
        fit(run, progress)
        return finish(run, time.perf_counter() - started)


def resolve_settings(config: TrainConfig) -> Any:
    """Validate ``config`` and make the run's ``Accelerator``; callable again in the same process.

    The device is ``config.device`` (``--cpu`` is ``--device cpu``) in a single process, the local
    rank's under ``accelerate launch``/``torchrun``, else the GPU when there is one. On a GPU the
    loader's host-to-device copies are non-blocking (from pinned memory, ``restore_or_build``).
    Accelerate keeps the precision process-wide and refuses a different one later (a second
    ``train`` in a notebook, tests, benchmarks); then only that part of its state is reset — the
    process group and device (``PartialState``) stay, unless a single process asks for another device.

    Raises:
        ConfigError: a setting its validator refuses; an unknown or missing device; fp16 on the CPU.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DataLoaderConfiguration

    config.validate()
    device = _device(config)
    shared = AcceleratorState._shared_state
    moved = device is not None and PartialState._shared_state.get("device") not in (None, device)
    if moved and not _launched():
        AcceleratorState._reset_state(reset_partial_state=True)
    elif shared and shared.get("_mixed_precision") != config.mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=False)
    # Accelerate only treats a torchrun/accelerate-launch job as multi-process CPU training
    # (gloo) when told cpu=True; on a machine without any accelerator that is the only device.
    cpu = (device is not None and device.type == "cpu") or _accelerator_type() is None
    with _environment("ACCELERATE_TORCH_DEVICE", None if device is None or cpu else str(device)):
        accelerator = Accelerator(mixed_precision=config.mixed_precision, cpu=cpu, log_with=None,
                                  dataloader_config=DataLoaderConfiguration(non_blocking=not cpu))
    if config.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        # Accelerate would silently train in float32 here
        raise ConfigError("mixed_precision='fp16' needs a GPU, got the CPU; use 'bf16' or 'no' on CPU")
    return accelerator


def _launched() -> bool:
    """Whether this process is one of several started by ``accelerate launch`` or ``torchrun``."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _accelerator_type() -> Optional[str]:
    """The type of this machine's accelerator (``"cuda"``, ``"mps"``, ...), ``None`` without one."""
    if hasattr(torch, "accelerator"):
        found = torch.accelerator.current_accelerator(check_available=True)
        return None if found is None else found.type
    return "cuda" if torch.cuda.is_available() else None


def _device(config: TrainConfig) -> Optional[torch.device]:
    """The device the settings ask for (``None``: the launcher's or the default one)."""
    name = "cpu" if config.cpu else config.device
    if name is None:
        return None
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {name!r}; pass cpu, cuda, cuda:1, mps, ...") from None
    if device.type == "cpu":
        return device
    if _launched():
        raise ConfigError(f"--device {name}: under accelerate launch or torchrun each process trains on the device "
                          "of its local rank; drop --device (choose the GPUs with CUDA_VISIBLE_DEVICES)")
    if _accelerator_type() != device.type:
        raise ConfigError(f"--device {name}: no {device.type} device is available here; pass --device cpu")
    return device


@contextlib.contextmanager
def _environment(name: str, value: Optional[str]) -> Iterator[None]:
    """``os.environ[name] = value`` inside the block (nothing when ``value`` is ``None``)."""
    if value is None:
        yield
        return
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before
