"""The training loop feeds the device (issue 19 item 4) and is quiet where asked (issue 17 rough edges).

- No host reads of device values in a step outside logging and evaluation (counted with ``SyncCounter``
  on a CPU run; the model's and the optimizer's own reads are theirs, not the loop's).
- The loss is logged every ``log_every`` steps; ``-q`` and a non-terminal stderr show no progress bar.
- Contradicting flags are usage errors; the header names the distributed type as a word; the
  run-folder refusal names flags; ``--device``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import torch

from sync_count import SyncCounter
from test_training import _config

import mcrf
from mcrf.training import TrainConfig, fit, train
from mcrf.training.report import read_log

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = os.path.join(os.path.dirname(os.path.abspath(mcrf.__file__)), "")
TRAINING = os.path.join(PACKAGE, "training", "")  # a prefix: the clone's own path may contain "/training/"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
TINY = ["--max-train-sentences", "16", "--max-eval-sentences", "8", "--batch-size", "8"]
#: lines of the loop that call into the model or the optimizer: their reads are the model's (the CRF's
#: checks on CPU) and AdamW's (its step counts live on the host, also on a GPU), not the loop's
OTHERS = ("run.model(", "backward(", "optimizer.step()")


def mcrf_cli(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mcrf", *map(str, argv)], capture_output=True, text=True, env=ENV,
                          cwd=ROOT, timeout=300)


class _LoopReads(SyncCounter):
    """A ``SyncCounter`` that keeps, for each read, the innermost frame of mcrf's own code."""

    def __init__(self) -> None:
        super().__init__()
        self.frames = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        before = self.count
        out = super().__torch_dispatch__(func, types, args, kwargs)
        if self.count > before:
            mine = [f for f in traceback.extract_stack() if f.filename.startswith(PACKAGE)]
            self.frames.append(mine[-1] if mine else None)
        return out

    def loop_reads(self):
        return [f"{Path(f.filename).name}:{f.lineno} {f.line}" for f in self.frames
                if f is not None and f.filename.startswith(TRAINING)
                and not any(call in (f.line or "") for call in OTHERS)]


def test_no_host_reads_in_a_step_outside_logging_and_evaluation(tmp_path, monkeypatch):
    """Each step used to read its loss (``float(loss)``) for the bar; now only log and eval steps read."""
    real_step = fit._step
    counters = {}
    current = []

    def counted(run, batch, losses):  # a counter per step, from its start to the next step's start
        if current:
            current.pop().__exit__(None, None, None)
        counter = _LoopReads()
        counter.__enter__()
        current.append(counter)
        counters[run.state.global_step + 1] = counter
        real_step(run, batch, losses)

    monkeypatch.setattr(fit, "_step", counted)
    try:  # 5 steps per epoch: no epoch ends; the loss is logged at step 3, the one evaluation is at step 4
        train(_config(tmp_path, max_steps=4, log_every=3, eval_every=100))
    finally:
        if current:
            current.pop().__exit__(None, None, None)
    reads = {step: counter.loop_reads() for step, counter in counters.items()}
    assert reads[1] == [] and reads[2] == [], reads
    assert reads[3] and reads[4], "the counter must see the logged and evaluated steps' reads"
    assert counters[1].count > 0  # it does see the model's and the optimizer's reads on CPU


def test_the_loss_is_logged_every_n_steps(tmp_path):
    result = train(_config(tmp_path, max_steps=7, log_every=2, eval_every=100))
    records = read_log(Path(result.output_dir) / "train_log.jsonl")
    logged = [r for r in records if r["event"] == "loss"]
    assert [r["step"] for r in logged] == [2, 4, 6]
    assert all(r["train_loss"] > 0 and r["sentences_per_second"] > 0 for r in logged)
    with pytest.raises(ValueError, match="log_every"):
        TrainConfig(log_every=-1)


def test_quiet_and_a_log_file_get_no_progress_bar_and_one_record_per_line(tmp_path):
    """stderr not a terminal: the bar and the log lines ran together on one line (``train: 0%| … step 63``)."""
    done = mcrf_cli("train", "sample", "--output", tmp_path / "a", "--max-steps", "4", "--log-every", "2", *TINY)
    assert done.returncode == 0, done.stderr
    assert "train:" not in done.stderr and "it/s" not in done.stderr and "\r" not in done.stderr
    assert any(line.startswith("step 2: loss ") for line in done.stderr.splitlines()), done.stderr
    assert "  distributed               no" in done.stderr
    quiet = mcrf_cli("train", "sample", "--output", tmp_path / "b", "--max-steps", "2", "-q", *TINY)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_progress_bar_shows_steps_per_second_when_asked(tmp_path, capsys):
    train(_config(tmp_path, max_steps=2), progress=True)
    err = capsys.readouterr().err
    assert "train: 100%" in err and "step/s" in err and "loss=" not in err


@pytest.mark.parametrize("argv, message", [
    (["--overwrite", "--resume"], "--resume continues the run in the output folder and --overwrite starts"),
    (["--cpu", "--device", "cuda"], None),
    (["--device", "meta"], "meta"),
    (["--device", "nonsense"], "nonsense"),
])
def test_contradicting_or_impossible_flags_are_usage_errors(tmp_path, argv, message):
    done = mcrf_cli("train", "sample", "--output", tmp_path / "run", *argv, *TINY)
    assert done.returncode == 2, done.stderr
    first = done.stderr.strip().splitlines()[0]
    assert first.startswith("mcrf train: error:") and "Traceback" not in done.stderr, done.stderr
    assert message is None or message in first, done.stderr


def test_device_cpu_trains_on_the_cpu(tmp_path):
    done = mcrf_cli("train", "sample", "--output", tmp_path / "run", "--device", "cpu", "--max-steps", "1", *TINY)
    assert done.returncode == 0, done.stderr
    assert "  device                    cpu" in done.stderr


def test_the_run_folder_refusal_names_flags(tmp_path):
    train(_config(tmp_path, max_steps=1))
    with pytest.raises(FileExistsError) as refused:
        train(_config(tmp_path, max_steps=1))
    text = str(refused.value)
    assert "--resume" in text and "--overwrite" in text and "--output" in text
    assert "resume=True" not in text and "output_dir" not in text


def test_the_loader_feeds_an_accelerator_and_leaves_the_cpu_default_alone():
    """Issue 19: --num-workers 0 (the old default) left the GPU idle (596 vs about 830 sentences/s with 4)."""
    from mcrf.training.build import _feeding

    cuda = _feeding(TrainConfig(), torch.device("cuda"))
    assert cuda["pin_memory"] and cuda["num_workers"] == min(4, os.cpu_count() or 1)
    assert cuda["persistent_workers"] == (cuda["num_workers"] > 0)
    assert _feeding(TrainConfig(), torch.device("cpu")) == {"num_workers": 0, "persistent_workers": False,
                                                           "pin_memory": False}
    assert _feeding(TrainConfig(num_workers=0), torch.device("cuda"))["num_workers"] == 0
    assert _feeding(TrainConfig(num_workers=2), torch.device("cpu"))["num_workers"] == 2


def test_train_help_says_how_multi_gpu_training_starts():
    done = mcrf_cli("train", "--help")
    assert done.returncode == 0
    assert "accelerate launch --multi_gpu --num_processes 2 -m mcrf train" in done.stdout
    assert "torchrun --nproc_per_node 2 -m mcrf train" in done.stdout and "--device" in done.stdout
