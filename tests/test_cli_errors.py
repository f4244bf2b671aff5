"""Errors you can trust (issue 9 item 5) and no traceback from the CLI (issue 8 case 7 and rough edges).

``UserError``s print as one line and exit 1 (``ConfigError``/usage: 2); any other exception is
a bug of mcrf: one ``internal error: ...`` line asking for a report, exit 3, the traceback only
with ``--debug``. Everything runs ``python -m mcrf`` in subprocesses; a bug is injected by a
small ``-c`` wrapper that replaces one function before calling ``mcrf.cli.app.main``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from processes import default_sigint

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
TINY = ["--max-steps", "1", "--max-train-sentences", "16", "--max-eval-sentences", "8", "--batch-size", "8"]
INTERNAL = "(rerun with --debug for the traceback; please report it)"


def mcrf(*argv, env=None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mcrf", *map(str, argv)], capture_output=True, text=True,
                          env=env or ENV, cwd=ROOT, timeout=timeout)


def with_bug(setup: str, *argv) -> subprocess.CompletedProcess:
    """``mcrf ARGV`` after ``setup`` (Python) has planted a bug."""
    code = f"import sys\n{setup}\nfrom mcrf.cli.app import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True, env=ENV,
                          cwd=ROOT, timeout=300)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """A finished tiny ``mcrf train sample`` run (with ``last/`` and ``model/``)."""
    out = tmp_path_factory.mktemp("errors") / "run"
    done = mcrf("train", "sample", "--output", out, *TINY)
    assert done.returncode == 0, done.stderr
    return out


# ---------------------------------------------------------------------------- the two paths
def test_a_bug_is_an_internal_error_with_its_own_exit_code_and_debug_shows_the_traceback():
    setup = "import mcrf.data\nmcrf.data.inspect_corpus = lambda corpus: {}['missing']"
    done = with_bug(setup, "inspect", "sample")
    assert done.returncode == 3
    assert one_line(done.stderr) == f"mcrf inspect: internal error: KeyError: 'missing' {INTERNAL}"
    done = with_bug(setup, "inspect", "sample", "--debug")
    assert done.returncode == 3 and "Traceback" in done.stderr and "KeyError" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("mcrf inspect: internal error: KeyError")


def test_a_plain_valueerror_of_ours_is_not_shown_as_the_users_fault():
    """The old CLI printed every ValueError/OSError as a user error: a bug looked like bad input."""
    setup = ("import mcrf.data\n"
             "def broken(corpus):\n    raise ValueError('expected 3 items, got 2')\n"
             "mcrf.data.inspect_corpus = broken")
    done = with_bug(setup, "inspect", "sample")
    assert done.returncode == 3
    assert one_line(done.stderr).startswith("mcrf inspect: internal error: ValueError: expected 3 items, got 2")


def test_user_errors_are_one_line_exit_1_and_usage_errors_exit_2(tmp_path):
    done = mcrf("inspect", tmp_path / "no-such-folder")
    assert done.returncode == 1 and one_line(done.stderr).startswith("mcrf inspect: error: ")
    done = mcrf("train", "sample", "--output", tmp_path / "run", "--dev-fraction", "1.5")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == "see `mcrf train --help`"


def test_a_bug_while_loading_a_model_is_not_called_a_corrupt_model(run_folder, tmp_path):
    """Model loading turned *any* exception into "corrupt or not an mcrf model"."""
    (tmp_path / "in.txt").write_text("John Smith flew to Paris .\n")
    setup = ("import mcrf.models.tagger as tagger\n"
             "def broken(*args, **kwargs):\n    raise TypeError('unsupported operand')\n"
             "tagger.Tagger.from_pretrained = classmethod(broken)")
    done = with_bug(setup, "predict", tmp_path / "in.txt", "--model", run_folder / "model")
    assert done.returncode == 3
    line = one_line(done.stderr)
    assert line.startswith("mcrf predict: internal error: TypeError: unsupported operand") and "corrupt" not in line


# ---------------------------------------------------------------------------- case 7: tracebacks
def test_case7_ctrl_c_while_starting_exits_130_quietly(tmp_path):
    """Case 7: Ctrl-C in the first seconds (imports outside the error handling) printed a traceback.

    The child prints a line, then runs ``python -m mcrf train sample`` the way ``-m`` does; SIGINT
    arrives at several moments while it parses, imports torch, and starts.
    """
    code = ("import runpy, sys\nprint('ready', flush=True)\n"
            "sys.argv = ['mcrf', 'train', 'sample', '--output', sys.argv[1], '--overwrite']\n"
            "runpy.run_module('mcrf', run_name='__main__', alter_sys=True)\n")
    for delay in (0.1, 0.3, 0.6, 1.2):
        child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "run")], env=ENV, cwd=ROOT,
                                 text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 preexec_fn=default_sigint)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(delay)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=120)
        assert child.returncode == 130, (delay, err)
        assert "Traceback" not in err and err.strip() in ("", "mcrf train: interrupted"), (delay, err)


def test_an_ignored_sigint_stays_ignored_while_starting():
    """``mcrf train ... &`` in a script (or under nohup) inherits SIGINT ignored: the start-up guard
    that turns Ctrl-C into a quiet exit must not turn a stray SIGINT into an exit there."""
    from mcrf.cli.app import _quiet_interrupts

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with _quiet_interrupts():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with _quiet_interrupts():
            assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler  # the quiet exit
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("damaged", ["optimizer.bin", "model.safetensors", "random_states_0.pkl"])
def test_case7_resume_from_a_truncated_checkpoint_file_names_the_file(run_folder, tmp_path, damaged):
    """Case 7: ``--resume`` with a truncated ``last/optimizer.bin`` or ``last/model.safetensors`` gave a
    traceback (and a truncated RNG state was skipped silently by Accelerate)."""
    out = tmp_path / "run"
    shutil.copytree(run_folder, out)
    path = out / "last" / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    done = mcrf("train", "sample", "--output", out, "--resume", *TINY[2:], "--max-steps", "2")
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert f"checkpoint file {path} is truncated or corrupt" in line and "--overwrite" in line


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_case7_device_meta_is_a_usage_error(run_folder, tmp_path, command):
    """Case 7: ``--device meta`` crashed with a traceback."""
    (tmp_path / "in.txt").write_text("John Smith flew to Paris .\n")
    argv = (["predict", tmp_path / "in.txt", "--model", run_folder / "model"] if command == "predict"
            else ["evaluate", run_folder / "model", "sample"])
    done = mcrf(*argv, "--device", "meta")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "mcrf runs on cpu, cuda, mps, xpu devices, not 'meta'" in done.stderr


# ---------------------------------------------------------------------------- case 8: rough edges
def test_case8_data_dir_file_hint_knows_hf_hub_offline_is_set(tmp_path):
    """Case 8: ``--data-dir FILE`` suggested setting HF_HUB_OFFLINE=1 when it was already set."""
    not_a_folder = tmp_path / "eng.train"
    not_a_folder.write_text("EU B-ORG\n")
    done = mcrf("inspect", "conll2003", "--data-dir", not_a_folder)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "set HF_HUB_OFFLINE=1" not in done.stderr and "HF_HUB_OFFLINE is set" in done.stderr
    assert f"{not_a_folder} (--data-dir: a file, not a folder" in done.stderr


# ---------------------------------------------------------------------------- a new user's mistakes (probe)
def test_an_encoder_folder_of_the_wrong_kind_is_a_clear_error_not_an_internal_one(run_folder, tmp_path):
    """`mcrf train sample --encoder runs/sample/model` (or any folder that is no Hugging Face model) was exit 3,
    "internal error: ValueError: Unrecognized model ... please report it"."""
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_text('{"hidden_size": 8}')
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = {run_folder / "model": "is a trained mcrf tagger, not a pretrained encoder",
             empty: "got a folder without config.json", odd: "has model_type None, which transformers does not know"}
    for folder, expected in cases.items():
        done = mcrf("train", "sample", "--output", tmp_path / "run", "--encoder", folder, *TINY)
        assert done.returncode == 2 and "internal error" not in done.stderr and "Traceback" not in done.stderr
        assert expected in done.stderr and "pass 'bilstm' or the name or folder of a Hugging Face model" in done.stderr


def test_predict_conll_input_with_a_stray_column_names_no_flag_predict_lacks(run_folder, tmp_path):
    """The hint said "pass --separator", a flag `mcrf predict` does not have."""
    conll = tmp_path / "in.conll"
    conll.write_text("John B-PER\nSmith I-PER\nParis B-LOC x\n")
    done = mcrf("predict", conll, "--model", run_folder, "--input-format", "conll")
    assert done.returncode == 1
    assert one_line(done.stderr) == (f"mcrf predict: error: {conll}:3: expected 2 columns (like line 1), got 3: "
                                     "'Paris B-LOC x'; fix the line")
