"""Stage 3 of ``train``: restore or build the run.

Loads the corpus and selects its splits, builds the tagger (a fresh one, or one shaped like the
``last/`` checkpoint's), the length-bucketed loader, the optimizer and the schedule, hands them to
Accelerate, and then either restores ``last/`` into them (``--resume``) or clears what an earlier
run left in the folder (a fresh run). The result is a ``Run``: everything ``fit`` advances and
``finish`` reads.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from mcrf.data.batching import LengthBucketSampler, SentenceDataset, sentence_lengths
from mcrf.io import runfolder
from mcrf.io.outputs import clean_temporaries
from mcrf.training import checkpoint, preflight, report
from mcrf.training.config import TrainConfig
from mcrf.training.folder import STALE_ON_OVERWRITE
from mcrf.training.optim import build_optimizer, linear_schedule
from mcrf.training.resume import restore_tagger

logger = logging.getLogger(__name__)

__all__ = ["TrainerState", "Run", "restore_or_build"]


@dataclass
class TrainerState:
    """Counters saved in ``last/trainer_state.json`` (everything else lives in Accelerate's state)."""

    global_step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    best_f1: float = -1.0
    best_step: int = -1
    evals_since_best: int = 0
    last_eval_step: int = -1
    stopped_early: bool = False


@dataclass
class Run:
    """One process's training run: built by ``restore_or_build``, advanced by ``fit``, read by ``finish``."""

    config: TrainConfig
    accelerator: Any
    train_set: List[Any]
    dev_set: List[Any]
    test_set: List[Any]
    scheme: str
    data_notes: List[str]
    model: Any  # the prepared Tagger (possibly wrapped by Accelerate)
    optimizer: Any
    loader: Any
    sampler: LengthBucketSampler
    scheduler: Any
    state: TrainerState = field(default_factory=TrainerState)
    best_dev: Any = None  # EvalResult of the best model when it was evaluated in this process

    @property
    def output_dir(self) -> Path:
        return Path(self.config.output_dir)

    @property
    def log_path(self) -> Path:
        return self.output_dir / "train_log.jsonl"

    @property
    def steps_per_epoch(self) -> int:
        return len(self.loader)

    @property
    def total_steps(self) -> int:
        return self.config.max_steps or self.config.epochs * self.steps_per_epoch

    @property
    def num_epochs(self) -> int:
        return math.ceil(self.total_steps / self.steps_per_epoch)

    @property
    def stateful(self) -> tuple:
        """Saved as JSON in ``last/trainer_state.json``, not registered with Accelerate (which unpickles them)."""
        return (self.scheduler, self.sampler)

    @property
    def tagger(self):
        return self.accelerator.unwrap_model(self.model)

    def decided(self) -> Dict[str, Any]:
        """The settings the built model decided (its encoder's options), for the header and the records."""
        return {"encoder_options": self.tagger.config.encoder_options}

    def header(self) -> str:
        """The settings block and what the run found (processes, device, splits, steps, parameters)."""
        acc = self.accelerator
        extra = {
            "processes": acc.num_processes, "device": str(acc.device),
            "distributed": acc.distributed_type.value.lower().replace("_", "-"), "scheme": self.scheme,
            "labels": len(self.tagger.config.labels), "train/dev/test sentences":
            f"{len(self.train_set)}/{len(self.dev_set)}/{len(self.test_set)}",
            "steps per epoch": self.steps_per_epoch, "total steps": self.total_steps,
            "parameters": sum(p.numel() for p in self.tagger.parameters()),
        }
        if self.data_notes:
            extra["data"] = "; ".join(self.data_notes)
        width = max(len(k) for k in extra)
        return (self.config.header(self.decided()) + "\n"
                + "\n".join(f"  {k.ljust(width)}  {v}" for k, v in extra.items()))

    def evaluate(self, sentences: List[Any], tagger: Any = None):
        """Whole-split evaluation sharded over the processes (``self.tagger`` unless given)."""
        from mcrf.evaluation import evaluate

        tagger = self.tagger if tagger is None else tagger
        tagger.eval()
        try:
            with torch.no_grad(), self.accelerator.autocast():
                return evaluate(tagger, sentences, self.config.eval_batch_size, accelerator=self.accelerator)
        finally:
            self.model.train()

    def save_last(self) -> None:
        """Checkpoint ``last/`` (every process)."""
        checkpoint.save_last(self.accelerator, self.output_dir, {
            "state": asdict(self.state), "tagger": self.tagger.config.to_dict(),
            "train_config": self.config.to_dict(),
        }, self.tagger.encoder, self.stateful)

    def current_lr(self) -> float:
        """Current encoder peak lr (``config.lr`` times the schedule factor)."""
        group = self.scheduler.optimizer.param_groups[0]
        return self.config.lr * group["lr"] / group["initial_lr"]


def _feeding(config: TrainConfig, device: torch.device) -> Dict[str, Any]:
    """DataLoader options that keep ``device`` fed: worker processes collate ahead and, for CUDA, into pinned
    memory, from which Accelerate's non-blocking copies overlap the step (``resolve_settings``)."""
    workers = config.num_workers
    if workers is None:
        workers = 0 if device.type == "cpu" else min(4, os.cpu_count() or 1)
    return {"num_workers": workers, "persistent_workers": workers > 0, "pin_memory": device.type == "cuda"}


def restore_or_build(config: TrainConfig, accelerator: Any, saved: Optional[Dict[str, Any]]) -> Run:
    """Build the run's data, model, loader, optimizer and schedule; restore ``last/`` into them when resuming.

    Args:
        config: the resolved settings.
        accelerator: the run's ``Accelerator``.
        saved: the checkpoint's ``trainer_state.json`` (resuming; already checked against ``config``)
            or ``None`` (a fresh run).

    Raises:
        DataError: train or dev is missing or empty; ``load_corpus``'s errors.
        ConfigError: the corpus's labels or scheme differ from the checkpoint's.
        ModelDirError: a checkpoint file is truncated, corrupt or untrusted.
    """
    from accelerate.utils import set_seed

    from mcrf.data import load_corpus
    from mcrf.models import Tagger

    set_seed(config.seed)
    corpus = load_corpus(config.dataset, config=config.load_config(), used=preflight.used_splits(config))
    carved = corpus.report.get("dev", {}).get("carved_from_train")
    if carved and accelerator.is_main_process:
        logger.info("dataset %s has no dev split: using the last %d training sentences (dev_fraction "
                    "%.2f, %s) as dev; set dev_fraction (--dev-fraction) to change it",
                    config.dataset, carved, config.dev_fraction, config.sources.get("dev_fraction"))
    train_set, dev_set, test_set = preflight.select_splits(corpus, config)
    if accelerator.is_main_process:
        preflight.warn_about_labels(train_set, {"dev": dev_set, "test": test_set}, config.dataset)
    output_dir = Path(config.output_dir)
    if saved is not None:
        tagger = restore_tagger(saved, corpus, output_dir)
    else:
        tagger = Tagger.build(config.tagger_config(corpus.labels, corpus.scheme), train_set)
    sampler = LengthBucketSampler(sentence_lengths(train_set), config.batch_size,
                                  shuffle=True, bucket=config.bucket, seed=config.seed)
    loader = torch.utils.data.DataLoader(
        SentenceDataset(train_set), batch_sampler=sampler, collate_fn=tagger.collator(),
        # Its own generator, so starting an epoch's iterator does not draw from the global RNG
        # (which drives dropout): a resumed run then replays exactly the uninterrupted one.
        generator=torch.Generator().manual_seed(config.seed), **_feeding(config, accelerator.device),
    )
    optimizer = build_optimizer(tagger, lr=config.lr, head_lr=config.head_lr,
                                layer_decay=config.layer_decay, weight_decay=config.weight_decay)
    model, prepared_optimizer, prepared_loader = accelerator.prepare(tagger, optimizer, loader)
    total_steps = config.max_steps or config.epochs * len(prepared_loader)
    run = Run(config=config, accelerator=accelerator, train_set=train_set, dev_set=dev_set, test_set=test_set,
              scheme=corpus.scheme, data_notes=corpus.notes, model=model, optimizer=prepared_optimizer,
              loader=prepared_loader, sampler=sampler,
              # Not prepared on purpose: an AcceleratedScheduler steps num_processes times per call.
              scheduler=linear_schedule(optimizer, total_steps, warmup_ratio=config.warmup_ratio))
    if accelerator.is_main_process:
        clean_temporaries(output_dir)  # left by a killed save
        if saved is None:  # a fresh run (overwrite=True when something was there)
            runfolder.remove_outputs(output_dir, STALE_ON_OVERWRITE)
    accelerator.wait_for_everyone()
    if saved is not None:
        checkpoint.restore_last(accelerator, output_dir, run.stateful)
        run.state = TrainerState(**saved["state"])
        if accelerator.is_main_process:
            report.truncate_log(run.log_path, run.state.global_step)
            logger.info("resumed from %s at step %d", output_dir / "last", run.state.global_step)
    if accelerator.is_main_process:  # the log lines once, not once per process
        logger.info("%s", run.header())
        report.append_log(run.log_path, {"event": "settings", "step": run.state.global_step,
                                         "settings": config.settings(run.decided())})
    return run
