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

import time
from typing import Any

import torch

from mcrf.errors import ConfigError
from mcrf.training.build import restore_or_build
from mcrf.training.config import TrainConfig
from mcrf.training.finish import TrainResult, finish
from mcrf.training.fit import fit
from mcrf.training.folder import claim_folder

__all__ = ["train", "resolve_settings"]


def train(config: TrainConfig) -> TrainResult:
    """Train a tagger as configured; return where the model and metrics are.

    Loads the corpus (``mcrf.data.load_corpus``), builds the ``Tagger``, trains with AdamW
    (LLRD, warmup/decay, clipping) on length-bucketed batches through Accelerate, evaluates on the
    whole dev set every epoch or ``eval_every`` steps, keeps the best model (``best/``), stops early
    after ``patience`` evaluations without improvement, checkpoints ``last/`` for ``resume``, and
    finally writes ``model/`` (the best model, its card with dev/test metrics), ``metrics.json``,
    ``train_log.jsonl`` and ``training_curves.png`` into ``config.output_dir``.

    Args:
        config: a validated ``TrainConfig``.

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
        fit(run)
        return finish(run, time.perf_counter() - started)


def resolve_settings(config: TrainConfig) -> Any:
    """Validate ``config`` and make the run's ``Accelerator``; callable again in the same process.

    Accelerate keeps the precision process-wide and refuses a different one later (a second
    ``train`` in a notebook, tests, benchmarks); then only that part of its state is reset — the
    process group and device (``PartialState``) stay.

    Raises:
        ConfigError: a setting its validator refuses; fp16 on the CPU.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    config.validate()
    shared = AcceleratorState._shared_state
    if shared and shared.get("_mixed_precision") != config.mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=False)
    # Accelerate only treats a torchrun/accelerate-launch job as multi-process CPU training
    # (gloo) when told cpu=True; on a machine without any accelerator that is the only device.
    has_accelerator = getattr(torch, "accelerator", None)
    available = has_accelerator.is_available() if has_accelerator else torch.cuda.is_available()
    accelerator = Accelerator(mixed_precision=config.mixed_precision, cpu=config.cpu or not available,
                              log_with=None)
    if config.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        # Accelerate would silently train in float32 here
        raise ConfigError("mixed_precision='fp16' needs a GPU, got the CPU; use 'bf16' or 'no' on CPU")
    return accelerator
