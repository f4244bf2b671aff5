"""Stage 5 of ``train``: finish, the best model evaluated on dev and test and written as ``model/``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

from mcrf.io.files import write_json
from mcrf.training import checkpoint, report
from mcrf.training.build import Run

__all__ = ["TrainResult", "finish"]


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


def finish(run: Run, seconds: float) -> TrainResult:
    """Reload the best model, evaluate it on dev and test, write model/, metrics.json and the plot."""
    from mcrf.models import Tagger

    acc, state = run.accelerator, run.state
    acc.wait_for_everyone()
    # best/ is deleted once model/ holds it; a resumed finished run (or one killed while best/ was
    # deleted) whose later evaluations did not improve finds its best model in model/.
    best_dir = checkpoint.find_checkpoint(run.output_dir, "best") or checkpoint.find_checkpoint(
        run.output_dir, "model")
    if best_dir is None:
        raise FileNotFoundError(f"expected a best model in {run.output_dir / 'best'}, found none")
    best = Tagger.from_pretrained(str(best_dir), device=acc.device)
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
        best.save_pretrained(model_dir, report.card_metrics(metrics))
        checkpoint.discard(run.output_dir, "best")  # model/ is complete: a kill from here on resumes from it
        write_json(run.output_dir / "metrics.json", metrics, sort_keys=True)
        report.plot_curves(report.read_log(run.log_path), run.output_dir / "training_curves.png")
    acc.wait_for_everyone()
    return TrainResult(output_dir=str(run.output_dir), model_dir=str(model_dir), metrics=metrics,
                       global_step=state.global_step, best_step=state.best_step,
                       best_dev_f1=state.best_f1, stopped_early=state.stopped_early)
