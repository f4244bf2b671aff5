"""Stage 4 of ``train``: fit, the epoch/step loop with dev evaluation, best-model keeping and checkpoints.

A step reads nothing back from the device: the loss is summed where it was computed and read only
when it is logged (every ``log_every`` steps, at each epoch's end and at each evaluation), so on a GPU
the host queues the next step while the device works. The progress bar counts steps (steps/s).
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from typing import Any, Optional

import torch

from mcrf.training import preflight, report
from mcrf.training.build import Run

logger = logging.getLogger(__name__)

__all__ = ["fit"]

_LOG, _EVAL, _EPOCH = range(3)  # the spans a mean training loss is taken over


class _Losses:
    """Per-process sums of the training loss on the device, one per span, read only when taken."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(3, device=device)  # shape: (3,) the log, eval and epoch spans
        self.counts = [0, 0, 0]

    def add(self, loss: torch.Tensor) -> None:
        self.sums.add_(loss.detach().float())  # one kernel, no host read
        self.counts = [count + 1 for count in self.counts]

    def take(self, run: Run, span: int) -> Optional[float]:
        """The mean over all processes since ``span`` was last taken (one host read); ``None`` if empty.

        Raises:
            TrainingDiverged: the mean is not finite (a step since the span began had a non-finite loss).
        """
        # every process takes the same steps, so the count is known on the host: only the sum is reduced
        total = float(run.accelerator.reduce(self.sums[span].clone(), reduction="sum"))  # the one read
        count = self.counts[span] * run.accelerator.num_processes
        self.sums[span] = 0.0
        self.counts[span] = 0
        if count == 0:
            return None
        mean = total / count
        if not math.isfinite(mean):
            raise preflight.diverged(run.state.global_step, "loss")
        return mean


class _Speed:
    """Training sentences per second, timed on the host over training steps only (evaluations excluded)."""

    def __init__(self) -> None:
        self.seconds, self.sentences, self.tick = 0.0, 0, time.perf_counter()

    def lap(self) -> float:
        """Count the time since the last lap or skip; return sentences/s so far."""
        now = time.perf_counter()
        self.seconds, self.tick = self.seconds + now - self.tick, now
        return self.sentences / max(self.seconds, 1e-9)

    def skip(self) -> None:
        """Do not count the time since the last lap (an evaluation, a checkpoint)."""
        self.tick = time.perf_counter()


def fit(run: Run, progress: Optional[bool] = None) -> None:
    """Train from ``run.state`` until ``total_steps`` or early stopping; evaluate and checkpoint on schedule.

    Args:
        run: what ``restore_or_build`` built.
        progress: show the progress bar (on the local main process); ``None``: when stderr is a terminal
            (in a log file a bar would only interleave with the log lines).
    """
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    acc, config, state = run.accelerator, run.config, run.state
    show = acc.is_local_main_process and (sys.stderr.isatty() if progress is None else progress)
    bar = tqdm(total=run.total_steps, initial=state.global_step, desc="train", unit="step", dynamic_ncols=True,
               disable=not show, file=sys.stderr)
    # log lines go above the bar (tqdm.write), not onto its line
    lines_above = logging_redirect_tqdm() if show else contextlib.nullcontext()
    losses = _Losses(acc.device)
    speed = _Speed()
    run.model.train()
    with contextlib.closing(bar), lines_above:
        while state.epoch < run.num_epochs and state.global_step < run.total_steps and not state.stopped_early:
            loader = run.loader
            if state.batches_in_epoch:
                loader = acc.skip_first_batches(run.loader, state.batches_in_epoch)
            # Accelerate's loader calls set_epoch(its own iteration count) on the batch sampler when
            # iterated; set both so a resumed run (whose loader restarts counting) uses the right epoch.
            loader.set_epoch(state.epoch)
            run.sampler.set_epoch(state.epoch)
            for batch in loader:
                _step(run, batch, losses)
                state.global_step += 1
                state.batches_in_epoch += 1
                speed.sentences += int(batch["word_mask"].shape[0]) * acc.num_processes  # a shape: no read
                bar.update(1)
                if config.log_every and state.global_step % config.log_every == 0:
                    _log_loss(run, losses.take(run, _LOG), speed)
                if isinstance(config.eval_every, int) and state.global_step % config.eval_every == 0:
                    speed.lap()
                    _evaluate_and_checkpoint(run, losses.take(run, _EVAL))
                    speed.skip()
                if state.global_step >= run.total_steps or state.stopped_early:
                    break
            epoch_done = state.batches_in_epoch >= run.steps_per_epoch
            speed.lap()
            if epoch_done:
                mean = losses.take(run, _EPOCH)
                state.epoch, state.batches_in_epoch = state.epoch + 1, 0
                if acc.is_main_process:
                    report.append_log(run.log_path, {"event": "epoch", "step": state.global_step,
                                                     "epoch": state.epoch, "train_loss": mean})
                if config.eval_every == "epoch":
                    _evaluate_and_checkpoint(run, losses.take(run, _EVAL))
            speed.skip()
            if not epoch_done:
                break  # max_steps or early stopping inside the epoch
        if state.last_eval_step != state.global_step:
            _evaluate_and_checkpoint(run, losses.take(run, _EVAL))


def _step(run: Run, batch: Any, losses: _Losses) -> None:
    """One optimizer step on ``batch``; its loss is added to ``losses`` on the device, not read."""
    acc = run.accelerator
    try:
        # On an accelerator skip the checks (the data layer checked the data): no host reads; a
        # NaN loss is then caught when the loss is next read. On CPU a read waits for nothing, and the
        # checked path is the faster one there (validate=False runs the exact log-space recursion:
        # 1.3x the checked NLL at 9 tags, 3.1x at 37, docs/crf.md): checks stay on.
        loss = run.model(batch, validate=acc.device.type == "cpu")
    except ValueError:  # e.g. the CRF refusing NaN emissions: ours (diverged) or a real error
        _raise_if_diverged(run, batch, run.state.global_step + 1)
        raise
    acc.backward(loss)
    if run.config.max_grad_norm > 0:
        acc.clip_grad_norm_(run.model.parameters(), run.config.max_grad_norm)
    run.optimizer.step()
    if not acc.optimizer_step_was_skipped:
        run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    losses.add(loss)


def _log_loss(run: Run, loss: Optional[float], speed: _Speed) -> None:
    """The ``log_every`` line: mean loss since the last one, learning rate, training sentences/s."""
    rate = speed.lap()
    state = run.state
    if run.accelerator.is_main_process:
        logger.info("step %d: loss %.4f, lr %.2e, %.1f sentences/s", state.global_step, loss, run.current_lr(), rate)
        report.append_log(run.log_path, {"event": "loss", "step": state.global_step,
                                         "epoch": state.global_step / run.steps_per_epoch, "train_loss": loss,
                                         "lr": run.current_lr(), "sentences_per_second": rate})


def _evaluate_and_checkpoint(run: Run, train_loss: Optional[float]) -> None:
    """Dev evaluation, best-model keeping, early-stopping bookkeeping, ``last/`` checkpoint."""
    state = run.state
    diverged = preflight.non_finite(run.tagger)
    if diverged:
        raise preflight.diverged(state.global_step, diverged)
    result = run.evaluate(run.dev_set)
    state.last_eval_step = state.global_step
    improved = result.f1 > state.best_f1
    if improved:
        state.best_f1, state.best_step, state.evals_since_best = result.f1, state.global_step, 0
        run.best_dev = result
    else:
        state.evals_since_best += 1
    if run.config.patience is not None and state.evals_since_best >= run.config.patience:
        state.stopped_early = True
    if run.accelerator.is_main_process:
        if improved:
            run.tagger.save_pretrained(run.output_dir / "best", {"dev": result.to_dict(), "step": state.global_step})
        report.append_log(run.log_path, {
            "event": "eval", "step": state.global_step,
            "epoch": state.global_step / run.steps_per_epoch, "train_loss": train_loss,
            "lr": run.current_lr(), "dev_f1": result.f1, "dev_precision": result.precision,
            "dev_recall": result.recall, "dev_macro_f1": result.macro_f1,
            "dev_illegal_path_rate": result.illegal_path_rate,
            "dev_sentences_per_second": result.sentences_per_second, "best": improved,
        })
        logger.info("step %d: dev F1 %.2f (best %.2f at step %d), illegal paths %.2f%%", state.global_step,
                    100 * result.f1, 100 * state.best_f1, state.best_step, 100 * (result.illegal_path_rate or 0))
    run.save_last()


def _raise_if_diverged(run: Run, batch: Any, step: int) -> None:
    """Raise ``TrainingDiverged`` when the tagger's parameters, or its scores on ``batch``, are not finite."""
    reason = preflight.non_finite(run.tagger)
    if reason is None:
        with torch.no_grad():
            if not bool(torch.isfinite(run.tagger.emissions(batch)).all()):
                reason = "emission scores: the parameters grew too large"
    if reason is not None:
        raise preflight.diverged(step, reason)
