"""``train(config)``: the training loop, run through 🤗 Accelerate.

Works unchanged in one process, under ``accelerate launch`` and under ``torchrun`` (Accelerate
reads the launcher's environment; on CPU it uses the gloo backend). Every process runs this
function; only the main process writes files (apart from the per-process RNG states Accelerate
stores inside the ``last/`` checkpoint) and shows the progress bar.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from mcrf.io import runfolder
from mcrf.data.batching import LengthBucketSampler, SentenceDataset, sentence_lengths
from mcrf.io.files import write_json
from mcrf.io.outputs import clean_temporaries
from mcrf.training import checkpoint, preflight, report
from mcrf.training.preflight import TRAIN_OUTPUTS
from mcrf.training.config import TrainConfig
from mcrf.training.resume import check_resumable, restore_tagger
from mcrf.training.optim import build_optimizer, linear_schedule

logger = logging.getLogger(__name__)

__all__ = ["train", "TrainResult", "TrainerState", "TRAIN_OUTPUTS"]

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
class TrainResult:
    """Outcome of ``train``: where things are and the final metrics (same on every process)."""

    output_dir: str
    model_dir: str
    metrics: Dict[str, Any]
    global_step: int
    best_step: int
    best_dev_f1: float
    stopped_early: bool


class _Run:
    """State of one training run on one process (kept small; ``train`` drives it)."""

    def __init__(self, config: TrainConfig, accelerator: Any) -> None:
        from accelerate.utils import set_seed

        from mcrf.data import load_corpus
        from mcrf.models import Tagger

        self.config = config
        self.accelerator = accelerator
        self.output_dir = Path(config.output_dir)
        preflight.check_output_dir(config, self.output_dir)
        set_seed(config.seed)
        # A resumed run is checked against its checkpoint before anything is restored into it.
        self.saved = checkpoint.read_last(self.output_dir) if config.resume else None
        if self.saved is not None:
            check_resumable(self.saved, config, self.output_dir)
        corpus = load_corpus(config.dataset, config=config.load_config())
        carved = corpus.report.get("dev", {}).get("carved_from_train")
        if carved:
            logger.info("dataset %s has no dev split: using the last %d training sentences (dev_fraction "
                        "%.2f, %s) as dev; set dev_fraction (--dev-fraction) to change it",
                        config.dataset, carved, config.dev_fraction, config.sources.get("dev_fraction"))
        self.train_set, self.dev_set, self.test_set = preflight.select_splits(corpus, config)
        if accelerator.is_main_process:
            preflight.warn_about_labels(self.train_set, {"dev": self.dev_set, "test": self.test_set}, config.dataset)
        self.scheme = corpus.scheme
        self.data_notes = corpus.notes
        if self.saved is not None:
            tagger = restore_tagger(self.saved, corpus, self.output_dir)
        else:
            tagger = Tagger.build(config.tagger_config(corpus.labels, corpus.scheme), self.train_set)
        self.sampler = LengthBucketSampler(sentence_lengths(self.train_set), config.batch_size,
                                           shuffle=True, bucket=config.bucket, seed=config.seed)
        loader = torch.utils.data.DataLoader(
            SentenceDataset(self.train_set), batch_sampler=self.sampler, collate_fn=tagger.collator(),
            num_workers=config.num_workers,
            # Its own generator, so starting an epoch's iterator does not draw from the global RNG
            # (which drives dropout): a resumed run then replays exactly the uninterrupted one.
            generator=torch.Generator().manual_seed(config.seed),
        )
        optimizer = build_optimizer(tagger, lr=config.lr, head_lr=config.head_lr,
                                    layer_decay=config.layer_decay, weight_decay=config.weight_decay)
        raw_optimizer = optimizer
        self.model, self.optimizer, self.loader = self.accelerator.prepare(tagger, optimizer, loader)
        self.steps_per_epoch = len(self.loader)
        self.total_steps = config.max_steps or config.epochs * self.steps_per_epoch
        self.num_epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        # Not prepared on purpose: an AcceleratedScheduler steps num_processes times per call.
        self.scheduler = linear_schedule(raw_optimizer, self.total_steps, warmup_ratio=config.warmup_ratio)
        # Saved as JSON in last/trainer_state.json, not registered with Accelerate (which unpickles them)
        self.stateful = (self.scheduler, self.sampler)
        self.state = TrainerState()
        self.best_dev = None  # EvalResult of the best model when it was evaluated in this process
        self.log_path = self.output_dir / "train_log.jsonl"
        self.tagger_cls = Tagger

    @property
    def tagger(self):
        return self.accelerator.unwrap_model(self.model)

    def header(self) -> str:
        acc = self.accelerator
        extra = {
            "processes": acc.num_processes, "device": str(acc.device),
            "distributed": str(acc.distributed_type), "scheme": self.scheme,
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

    def decided(self) -> Dict[str, Any]:
        """The settings the built model decided (its sub-word window), for the header and the records."""
        model = self.tagger.config
        return {"max_length": model.max_length, "stride": model.stride}

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

    def resume(self) -> None:
        """Restore ``last/`` (weights, optimizer, scheduler, sampler, RNG) and the counters.

        The settings were compared with the checkpoint's in ``__init__``, before this restore.
        """
        checkpoint.restore_last(self.accelerator, self.output_dir, self.stateful)
        self.state = TrainerState(**self.saved["state"])
        if self.accelerator.is_main_process:
            report.truncate_log(self.log_path, self.state.global_step)
        logger.info("resumed from %s at step %d", self.output_dir / "last", self.state.global_step)

    def save_last(self) -> None:
        checkpoint.save_last(self.accelerator, self.output_dir, {
            "state": asdict(self.state), "tagger": self.tagger.config.to_dict(),
            "train_config": self.config.to_dict(),
        }, self.tagger.encoder, self.stateful)

    def eval_and_checkpoint(self, train_loss: Optional[float]) -> None:
        """Dev evaluation, best-model keeping, early-stopping bookkeeping, ``last/`` checkpoint."""
        state = self.state
        diverged = preflight.non_finite(self.tagger)
        if diverged:
            raise preflight.diverged(state.global_step, diverged)
        result = self.evaluate(self.dev_set)
        state.last_eval_step = state.global_step
        improved = result.f1 > state.best_f1
        if improved:
            state.best_f1, state.best_step, state.evals_since_best = result.f1, state.global_step, 0
            self.best_dev = result
        else:
            state.evals_since_best += 1
        if self.config.patience is not None and state.evals_since_best >= self.config.patience:
            state.stopped_early = True
        if self.accelerator.is_main_process:
            if improved:
                tagger = self.tagger
                metrics = {"dev": result.to_dict(), "step": state.global_step}
                tagger.save_pretrained(self.output_dir / "best", metrics)
            report.append_log(self.log_path, {
                "event": "eval", "step": state.global_step,
                "epoch": state.global_step / self.steps_per_epoch, "train_loss": train_loss,
                "lr": self.current_lr(), "dev_f1": result.f1, "dev_precision": result.precision,
                "dev_recall": result.recall, "dev_macro_f1": result.macro_f1,
                "dev_illegal_path_rate": result.illegal_path_rate,
                "dev_sentences_per_second": result.sentences_per_second, "best": improved,
            })
        logger.info("step %d: dev F1 %.2f (best %.2f at step %d), illegal paths %.2f%%", state.global_step,
                    100 * result.f1, 100 * state.best_f1, state.best_step, 100 * (result.illegal_path_rate or 0))
        self.save_last()

    def raise_if_diverged(self, batch: Any, step: int) -> None:
        """Raise ``TrainingDiverged`` when the tagger's parameters, or its scores on ``batch``, are not finite."""
        reason = preflight.non_finite(self.tagger)
        if reason is None:
            with torch.no_grad():
                if not bool(torch.isfinite(self.tagger.emissions(batch)).all()):
                    reason = "emission scores: the parameters grew too large"
        if reason is not None:
            raise preflight.diverged(step, reason)

    def current_lr(self) -> float:
        """Current encoder peak lr (``config.lr`` times the schedule factor)."""
        group = self.scheduler.optimizer.param_groups[0]
        return self.config.lr * group["lr"] / group["initial_lr"]

    def reduce_mean(self, total: float, count: int) -> Optional[float]:
        """Mean over all processes of a per-process sum and count (``None`` when nothing was seen)."""
        pair = torch.tensor([total, float(count)], dtype=torch.float64, device=self.accelerator.device)
        pair = self.accelerator.reduce(pair, reduction="sum")
        return float(pair[0] / pair[1]) if pair[1] > 0 else None


def _fit(run: _Run) -> None:
    """The epoch/step loop, from ``run.state`` until ``total_steps`` or early stopping."""
    from tqdm.auto import tqdm

    acc, config, state = run.accelerator, run.config, run.state
    # In a log file (stderr not a terminal) a bar redrawn every step floods it: redraw every 30 s.
    interactive = sys.stderr.isatty()
    bar = tqdm(total=run.total_steps, initial=state.global_step, desc="train", dynamic_ncols=True,
               disable=not acc.is_local_main_process, mininterval=0.1 if interactive else 30.0)
    # sentences/s counts training steps only (evaluation and checkpoint time excluded)
    step_seconds, seen, tick = 0.0, 0, time.perf_counter()
    eval_loss, eval_count = 0.0, 0
    run.model.train()
    try:
        while state.epoch < run.num_epochs and state.global_step < run.total_steps and not state.stopped_early:
            loader = run.loader
            if state.batches_in_epoch:
                loader = acc.skip_first_batches(run.loader, state.batches_in_epoch)
            # Accelerate's loader calls set_epoch(its own iteration count) on the batch sampler when
            # iterated; set both so a resumed run (whose loader restarts counting) uses the right epoch.
            loader.set_epoch(state.epoch)
            run.sampler.set_epoch(state.epoch)
            epoch_loss, epoch_count = 0.0, 0
            for batch in loader:
                try:
                    # On an accelerator skip the checks (the data layer checked the data): no host reads; a
                    # NaN loss is then caught below. On CPU a read waits for nothing, and validate=False's
                    # read-free range fallback would cost 2-10x the CRF's time (measured): checks stay on.
                    loss = run.model(batch, validate=acc.device.type == "cpu")
                except ValueError:  # e.g. the CRF refusing NaN emissions: ours (diverged) or a real error
                    run.raise_if_diverged(batch, state.global_step + 1)
                    raise
                acc.backward(loss)
                if config.max_grad_norm > 0:
                    acc.clip_grad_norm_(run.model.parameters(), config.max_grad_norm)
                run.optimizer.step()
                if not acc.optimizer_step_was_skipped:
                    run.scheduler.step()
                run.optimizer.zero_grad(set_to_none=True)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise preflight.diverged(state.global_step + 1, "loss")
                state.global_step += 1
                state.batches_in_epoch += 1
                epoch_loss, epoch_count = epoch_loss + value, epoch_count + 1
                eval_loss, eval_count = eval_loss + value, eval_count + 1
                seen += int(batch["word_mask"].shape[0]) * acc.num_processes
                now = time.perf_counter()
                step_seconds, tick = step_seconds + now - tick, now
                # postfix first without a redraw, then update(): tqdm redraws at most every mininterval
                bar.set_postfix(loss=f"{value:.4f}", lr=f"{run.current_lr():.2e}",
                                sent_s=f"{seen / max(step_seconds, 1e-9):.1f}", refresh=False)
                bar.update(1)
                if isinstance(config.eval_every, int) and state.global_step % config.eval_every == 0:
                    run.eval_and_checkpoint(run.reduce_mean(eval_loss, eval_count))
                    eval_loss, eval_count = 0.0, 0
                    tick = time.perf_counter()
                if state.global_step >= run.total_steps or state.stopped_early:
                    break
            epoch_done = state.batches_in_epoch >= run.steps_per_epoch
            if epoch_done:
                mean = run.reduce_mean(epoch_loss, epoch_count)
                state.epoch, state.batches_in_epoch = state.epoch + 1, 0
                if acc.is_main_process:
                    report.append_log(run.log_path, {"event": "epoch", "step": state.global_step,
                                                     "epoch": state.epoch, "train_loss": mean})
                if config.eval_every == "epoch":
                    run.eval_and_checkpoint(run.reduce_mean(eval_loss, eval_count))
                    eval_loss, eval_count = 0.0, 0
            tick = time.perf_counter()
            if not epoch_done:
                break  # max_steps or early stopping inside the epoch
        if state.last_eval_step != state.global_step:
            run.eval_and_checkpoint(run.reduce_mean(eval_loss, eval_count))
    finally:
        bar.close()


def _finish(run: _Run, seconds: float) -> TrainResult:
    """Reload the best model, evaluate it on dev and test, write model/, metrics.json and the plot."""
    acc, state = run.accelerator, run.state
    acc.wait_for_everyone()
    # best/ is renamed to model/ at the end; a resumed finished run whose later evaluations did
    # not improve finds its best model in model/.
    best_dir = checkpoint.find_checkpoint(run.output_dir, "best") or checkpoint.find_checkpoint(
        run.output_dir, "model")
    if best_dir is None:
        raise FileNotFoundError(f"expected a best model in {run.output_dir / 'best'}, found none")
    best = run.tagger_cls.from_pretrained(str(best_dir), device=acc.device)
    # The saved best weights are exactly the evaluated ones: reuse that dev result when it was
    # computed in this process (not after a resume), saving one pass over the dev set.
    dev = run.best_dev if run.best_dev is not None else run.evaluate(run.dev_set, best)
    test = run.evaluate(run.test_set, best) if run.test_set else None
    metrics: Dict[str, Any] = {
        "dev": dev.to_dict(), "test": None if test is None else test.to_dict(),
        "best_step": state.best_step, "global_step": state.global_step,
        "stopped_early": state.stopped_early, "train_seconds": seconds,
        "processes": acc.num_processes, "config": run.config.to_dict(),
        "sources": {name: item["source"] for name, item in run.config.settings().items()},
    }
    model_dir = run.output_dir / "model"
    if acc.is_main_process:
        card = report.card_metrics(metrics)
        best.save_pretrained(model_dir, card)
        for stale in ("best", "best.old"):
            if (run.output_dir / stale).exists():
                shutil.rmtree(run.output_dir / stale)
        write_json(run.output_dir / "metrics.json", metrics, sort_keys=True)
        report.plot_curves(report.read_log(run.log_path), run.output_dir / "training_curves.png")
    acc.wait_for_everyone()
    return TrainResult(output_dir=str(run.output_dir), model_dir=str(model_dir), metrics=metrics,
                       global_step=state.global_step, best_step=state.best_step,
                       best_dev_f1=state.best_f1, stopped_early=state.stopped_early)


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
    config.validate()
    accelerator = preflight.make_accelerator(config)
    # One run per folder: the main process holds the folder's lock until the run has ended.
    lock = runfolder.hold(config.output_dir) if accelerator.is_main_process else contextlib.nullcontext()
    with lock:
        run = _Run(config, accelerator)
        if accelerator.is_main_process:
            clean_temporaries(run.output_dir)  # left by a killed save
            if not config.resume:  # a fresh run (overwrite=True when something was there)
                runfolder.remove_outputs(run.output_dir, preflight.STALE_ON_OVERWRITE)
        accelerator.wait_for_everyone()
        if config.resume:
            run.resume()
        logger.info("%s", run.header())
        if accelerator.is_main_process:
            report.append_log(run.log_path, {"event": "settings", "step": run.state.global_step,
                                             "settings": run.config.settings(run.decided())})
        started = time.perf_counter()
        _fit(run)
        return _finish(run, time.perf_counter() - started)
