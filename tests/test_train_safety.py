"""Resuming and finishing a run safely (issue 17 defects 2 and 7).

- A hostile ``last/`` file (a pickle whose ``__reduce__`` runs a shell command) is refused with one line
  naming it as corrupt or untrusted, exit 1, nothing run and no advice to load it unsafely.
- A run killed while ``finish`` deletes ``best/`` can be finished with ``--resume`` from its ``model/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
TINY = ["--max-train-sentences", "16", "--max-eval-sentences", "8", "--batch-size", "8"]


def mcrf(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mcrf", *map(str, argv)], capture_output=True, text=True, env=ENV,
                          cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """A finished tiny ``mcrf train sample`` run (with ``last/`` and ``model/``)."""
    out = tmp_path_factory.mktemp("safety") / "run"
    done = mcrf("train", "sample", "--output", out, "--max-steps", "1", *TINY)
    assert done.returncode == 0, done.stderr
    return out


class _Hostile:
    """Unpickling this runs ``touch <marker>``: what an attacker's checkpoint file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("planted", ["optimizer.bin", "random_states_0.pkl"])
def test_a_hostile_checkpoint_file_is_refused_as_untrusted_and_nothing_runs(run_folder, tmp_path, planted):
    """Defect 2: exit 3 with torch's "weights_only set to False will likely succeed" (the unsafe path) for
    optimizer.bin; a hostile random_states_0.pkl was skipped silently (the resumed run not reproducible)."""
    out = tmp_path / "run"
    shutil.copytree(run_folder, out)
    marker = tmp_path / "pwned"
    path = out / "last" / planted
    torch.save({"state": _Hostile(marker)}, path)
    done = mcrf("train", "sample", "--output", out, "--resume", "--max-steps", "2", *TINY)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert lines[-1].startswith(f"mcrf train: error: cannot resume: checkpoint file {path} is corrupt or untrusted")
    assert "--overwrite" in lines[-1]
    assert "weights_only" not in done.stderr and "Traceback" not in done.stderr
    assert not marker.exists()


def test_a_random_state_that_is_not_one_is_refused(run_folder, tmp_path):
    """A readable random_states_0.pkl without the states was skipped silently by Accelerate too."""
    out = tmp_path / "run"
    shutil.copytree(run_folder, out)
    torch.save({"step": 3}, out / "last" / "random_states_0.pkl")
    done = mcrf("train", "sample", "--output", out, "--resume", "--max-steps", "2", *TINY)
    assert done.returncode == 1, done.stderr
    assert "random_states_0.pkl is truncated or corrupt (expected the random states" in done.stderr


class _Killed(Exception):
    pass


def test_a_run_killed_while_best_is_deleted_finishes_on_resume_from_model(tmp_path, monkeypatch):
    """Defect 7: killed mid-delete of best/, the run could never be finished ("best lacks model.safetensors")."""
    from test_training import _config

    from mcrf.training import train

    out = tmp_path / "run"
    real_rmtree = shutil.rmtree

    def killed_mid_delete(path, *args, **kwargs):  # the kill lands after the weights went, before config.json
        path = Path(path)
        if path.name.startswith("best") and (out / "model" / "config.json").is_file():
            (path / "model.safetensors").unlink()
            raise _Killed(path)
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", killed_mid_delete)
    with pytest.raises(_Killed):
        train(_config(tmp_path, max_steps=3, eval_every=1))
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
    assert not (out / "metrics.json").exists()

    result = train(_config(tmp_path, max_steps=3, eval_every=1, resume=True))
    assert result.global_step == 3 and (out / "metrics.json").is_file()
    assert sorted(p.name for p in out.iterdir()) == [
        ".mcrf.lock", "last", "metrics.json", "model", "train_log.jsonl", "training_curves.png"]
