"""Stage 4 of ``train``: fit, the epoch/step loop with dev evaluation, best-model keeping and checkpoints."""

from __future__ import annotations

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


def fit(run: Run) -> None:
    """Train from ``run.state`` until ``total_steps`` or early stopping; evaluate and checkpoint on schedule."""
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
                    _raise_if_diverged(run, batch, state.global_step + 1)
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
                    _evaluate_and_checkpoint(run, run.reduce_mean(eval_loss, eval_count))
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
                    _evaluate_and_checkpoint(run, run.reduce_mean(eval_loss, eval_count))
                    eval_loss, eval_count = 0.0, 0
            tick = time.perf_counter()
            if not epoch_done:
                break  # max_steps or early stopping inside the epoch
        if state.last_eval_step != state.global_step:
            _evaluate_and_checkpoint(run, run.reduce_mean(eval_loss, eval_count))
    finally:
        bar.close()


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
