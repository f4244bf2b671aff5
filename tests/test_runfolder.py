"""One run per folder (``mcrf.io.runfolder`` and ``mcrf train``): issue 8 cases 3, 4 and the first-checkpoint circle.

The CLI cases run ``python -m mcrf train`` in subprocesses; the lock cases use two real processes.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from processes import default_sigint

from mcrf.io import runfolder
from mcrf.errors import RunFolderBusy, RunFolderUsed

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
HOLD = ("import sys, time\nfrom mcrf.io import runfolder\n"
        "with runfolder.hold(sys.argv[1]):\n    print('held', flush=True); time.sleep(float(sys.argv[2]))\n")
TINY = ["--max-steps", "1", "--max-train-sentences", "16", "--max-eval-sentences", "8", "--batch-size", "8"]


def mcrf(*argv, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mcrf", *map(str, argv)], capture_output=True, text=True, env=ENV,
                          cwd=ROOT, timeout=timeout)


def holder(folder: Path, seconds: float = 600) -> subprocess.Popen:
    """A process holding ``folder``'s lock (returns once it holds it)."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(seconds)], env=ENV, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.readline().strip() == "held", process.stderr.read()
    return process


# ---------------------------------------------------------------------------- the lock
def test_a_second_process_gets_a_clear_error_naming_the_pid(tmp_path):
    first = holder(tmp_path / "run")
    try:
        with pytest.raises(RunFolderBusy, match=rf"in use by another mcrf run \(PID {first.pid}: .*wait for it"):
            with runfolder.hold(tmp_path / "run"):
                pass
    finally:
        first.kill()
        first.wait()
    with runfolder.hold(tmp_path / "run") as lock:  # the kernel dropped the killed holder's lock
        assert lock.read_text().splitlines()[0] == str(os.getpid())


def test_the_lock_is_released_at_the_end_of_the_block(tmp_path):
    with runfolder.hold(tmp_path / "run"):
        pass
    done = subprocess.run([sys.executable, "-c", HOLD, str(tmp_path / "run"), "0"], env=ENV, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "held", done.stderr


def test_used_outputs_and_the_guard(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / "mine.txt").write_text("user's")
    (tmp_path / "last").mkdir()
    assert runfolder.used_outputs(tmp_path, ["last", "metrics.json", "model"]) == ["last", "metrics.json"]
    with pytest.raises(RunFolderUsed, match="already holds last, metrics.json from an earlier run; do X"):
        runfolder.require_unused(tmp_path, ["last", "metrics.json", "model"], fix="do X")
    runfolder.require_unused(tmp_path, ["model"], fix="do X")
    runfolder.remove_outputs(tmp_path, ["last", "metrics.json", "model"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


# ---------------------------------------------------------------------------- case 3: two trainings
def test_case3_a_second_training_into_a_busy_folder_is_refused_naming_the_pid(tmp_path):
    """Case 3: a second ``mcrf train`` into a folder a running training uses stops with one line naming
    the first's PID (it crashed at step 152 with a traceback, or silently replaced the other's model).
    The first one, interrupted afterwards, exits 130 without a traceback."""
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "mcrf", "train", "sample", "--output", str(out),
                              "--max-steps", "100000", "--eval-every", "100000"], env=ENV, cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and first.poll() is None:
            lock = out / runfolder.LOCK_FILE
            if lock.is_file() and lock.read_text().split("\n")[0] == str(first.pid):
                break
            time.sleep(0.2)
        assert first.poll() is None, first.communicate()[1]
        second = mcrf("train", "sample", "--output", out, "--decoder", "crf", *TINY)
        assert second.returncode == 1, second.stderr
        assert f"is in use by another mcrf run (PID {first.pid}: " in second.stderr
        assert "Traceback" not in second.stderr and len(second.stderr.strip().splitlines()) == 1
    finally:
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=120)
    assert first.returncode == 130 and "Traceback" not in err, err
    assert not (out / "model").exists()


# ---------------------------------------------------------------------------- case 4 and the circle
def test_case4_a_users_files_are_kept_without_overwrite(tmp_path):
    """Case 4: ``metrics.json`` and ``train_log.jsonl`` of the user's were replaced; the guard looked at
    ``last``, ``best`` and ``model`` only."""
    out = tmp_path / "run"
    out.mkdir()
    mine = {"metrics.json": '{"mine": true}\n', "train_log.jsonl": '{"step": 1, "mine": true}\n'}
    for name, content in mine.items():
        (out / name).write_text(content)
    done = mcrf("train", "sample", "--output", out, *TINY)
    assert done.returncode == 1, done.stderr
    assert "already holds metrics.json, train_log.jsonl from an earlier run" in done.stderr
    assert "--overwrite" in done.stderr and "Traceback" not in done.stderr
    for name, content in mine.items():
        assert (out / name).read_text() == content


def _interrupted_before_the_first_checkpoint(out: Path, model: Path) -> None:
    """The folder a kill during the first ``last/`` write leaves: ``best/``, a half ``last.tmp/``, the log,
    a killed model save's staging folder; no ``last/``."""
    import shutil

    shutil.copytree(model, out / "best")
    (out / "last.tmp").mkdir()
    (out / "last.tmp" / "optimizer.bin").write_bytes(b"\x80half")
    (out / "train_log.jsonl").write_text(json.dumps({"event": "eval", "step": 1}) + "\n")
    (out / ".model.999999999.abcd1234.mcrf-tmp").mkdir()


def test_case8_first_checkpoint_interruption_has_one_way_out(tmp_path):
    """Case 8: after a kill during the very first checkpoint, ``--resume`` said "start fresh" while a plain
    rerun said "pass --resume". Both now name ``--overwrite`` (and only it), which works; the model it
    writes is readable by others (umask 022), and no hidden leftover survives."""
    out = tmp_path / "run"
    out.mkdir()
    first = mcrf("train", "sample", "--output", tmp_path / "done", *TINY)
    assert first.returncode == 0, first.stderr
    _interrupted_before_the_first_checkpoint(out, tmp_path / "done" / "model")
    plain = mcrf("train", "sample", "--output", out, *TINY)
    resume = mcrf("train", "sample", "--output", out, "--resume", *TINY)
    for done in (plain, resume):
        assert done.returncode == 1, done.stderr
        assert "--overwrite" in done.stderr and "Traceback" not in done.stderr
        assert "pass --resume" not in done.stderr and "drop --resume" not in done.stderr
    assert "no checkpoint" in plain.stderr and "nothing to resume" in resume.stderr
    fresh = subprocess.run([sys.executable, "-c", "import os, sys; os.umask(0o022); from mcrf.cli.app import main; "
                            "sys.exit(main(sys.argv[1:]))", "train", "sample", "--output", str(out), "--overwrite",
                            *TINY], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert fresh.returncode == 0, fresh.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        ".mcrf.lock", "last", "metrics.json", "model", "train_log.jsonl", "training_curves.png"]
    for path in [out / "model", *(out / "model").rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644), path
