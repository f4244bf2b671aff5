"""Issue 17's rough edges of the command line: signals and pipes, output paths, messages.

Each test runs ``python -m mcrf`` (a subprocess, where signals and pipes are real) or ``main`` with
capsys, with the session's small BiLSTM ``sample_model``. Nothing is downloaded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcrf.cli.app import main
from mcrf.io.outputs import TEMP_SUFFIX

from processes import default_sigint

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def run(capsys, *argv):
    """``main(argv)`` -> (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def default_signals() -> None:
    """``preexec_fn``: Python's own SIGINT and the default SIGHUP, whatever this test run inherited (``nohup
    pytest`` ignores SIGHUP, and the child would keep that, as mcrf keeps a caller's choice on purpose)."""
    default_sigint()
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def start(*argv, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mcrf", *map(str, argv)], env=ENV, cwd=ROOT,
                            stderr=subprocess.PIPE, preexec_fn=default_signals, **kwargs)


@pytest.fixture()
def long_input(tmp_path) -> Path:
    """Enough text that the tiny model is still tagging a while after it started writing."""
    path = tmp_path / "long.txt"
    path.write_text("John Smith flew to Paris with Acme Corp on Monday .\n" * 400_000, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- signals and pipes
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_predict_killed_by_term_or_hup_removes_its_temporary(sample_model, long_input, tmp_path, signum):
    """Killed by SIGTERM/SIGHUP, predict left its hidden ``.out.txt.PID.….mcrf-tmp`` until the next write."""
    out = tmp_path / "out" / "tagged.txt"
    out.parent.mkdir()
    child = start("predict", long_input, "--model", sample_model, "-o", out, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.parent.glob(f".*{TEMP_SUFFIX}")):
        assert child.poll() is None and time.monotonic() < deadline, child.stderr.read().decode()
        time.sleep(0.05)
    child.send_signal(signum)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 128 + signum, err.decode()
    assert err.decode().strip().splitlines()[-1] == f"mcrf predict: terminated ({signal.Signals(signum).name})"
    assert list(out.parent.iterdir()) == []  # neither the temporary nor a half-written output


def test_an_ignored_sighup_stays_ignored_and_handlers_come_back():
    """``nohup mcrf …`` ignores SIGHUP on purpose; ``main`` may run inside another program."""
    from mcrf.cli.app import _terminations_unwind

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN), signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with _terminations_unwind():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def test_predict_into_a_closed_pipe_exits_141_quietly(sample_model, long_input):
    """``mcrf predict … | head -1`` exited 1, which the CLI documents as "a problem with your input"."""
    child = start("predict", long_input, "--model", sample_model, "--input-format", "text",
                  stdout=subprocess.PIPE)
    assert child.stdout.readline().strip()
    child.stdout.close()  # what `head -1` does after its line
    err = child.stderr.read().decode()
    assert child.wait(timeout=60) == 141, err
    assert err == ""


# ---------------------------------------------------------------------------- output paths
def test_an_output_path_with_a_trailing_slash_is_refused(sample_model, tmp_path, capsys):
    """``-o newfile/`` wrote a file named ``newfile``: the slash said a folder was meant."""
    text = tmp_path / "in.txt"
    text.write_text("John Smith flew to Paris .\n", encoding="utf-8")
    code, out, err = run(capsys, "predict", text, "--model", sample_model, "-o", f"{tmp_path / 'newfile'}/")
    assert code == 1 and out == ""
    assert err.strip() == (f"mcrf predict: error: cannot write the output to {tmp_path / 'newfile'}/: the trailing "
                           f"'/' names a folder; pass a file path (e.g. {tmp_path / 'newfile' / 'out.txt'}, after "
                           f"creating the folder {tmp_path / 'newfile'})")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


def test_a_read_only_output_file_is_refused_not_replaced(sample_model, tmp_path, capsys):
    """A read-only ``-o`` target was replaced silently (the rename needs only the folder's permission)."""
    text = tmp_path / "in.txt"
    text.write_text("John Smith flew to Paris .\n", encoding="utf-8")
    kept = tmp_path / "kept.txt"
    kept.write_text("mine\n", encoding="utf-8")
    kept.chmod(0o444)
    code, _, err = run(capsys, "predict", text, "--model", sample_model, "-o", kept)
    assert code == 1 and err.strip() == (
        f"mcrf predict: error: cannot write the output to {kept}: the file is read-only; make it "
        f"writable (chmod u+w {kept}) or remove it first")
    assert kept.read_text(encoding="utf-8") == "mine\n"
    kept.chmod(0o644)  # the user's way of saying "replace it"
    code, _, err = run(capsys, "predict", text, "--model", sample_model, "-o", kept)
    assert code == 0 and "John" in kept.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------- messages
def test_plain_text_is_read_without_a_word_and_a_close_call_is_announced(sample_model, tmp_path, capsys):
    """Every ordinary text file printed "reading text input ('budget.' (line 1, last column) is not a tag)"."""
    text = tmp_path / "news.txt"
    text.write_text("The council approved the budget.\nMaria Rossi visited Kyoto .\n", encoding="utf-8")
    code, out, err = run(capsys, "predict", text, "--model", sample_model)
    assert code == 0 and "Maria\tB-PER" in out and err == ""
    close = tmp_path / "close.txt"  # two-word lines ending in O: CoNLL without entities, or text?
    close.write_text("Plan O\nBig O\n", encoding="utf-8")
    code, _, err = run(capsys, "predict", close, "--model", sample_model)
    assert code == 0 and err.strip() == (
        f"{close}: reading text input (the last column holds no entity tag (only O or bare prefixes): two-word "
        "lines look the same); pass --input-format to choose")
    tagged_late = tmp_path / "late.txt"  # looks like columns for a while, then a line rules CoNLL out
    tagged_late.write_text("EU B-ORG\nrejects O\nThe budget.\n", encoding="utf-8")
    code, _, err = run(capsys, "predict", tagged_late, "--model", sample_model)
    assert code == 0 and "reading text input ('budget.' (line 3, last column) is not a tag)" in err


def test_top_level_help_names_every_command_and_no_flag_help_says_not(capsys):
    """``mcrf --help``'s description listed four of the six commands; ``--no-bucket`` read "not: length-…"."""
    from mcrf.cli.app import COMMANDS

    code, out, _ = run(capsys, "--help")
    description = out.split("\n\n")[1]
    assert code == 0 and description == f"Masked CRF sequence labeling: {', '.join(COMMANDS)}."
    assert len(COMMANDS) == 7  # train, evaluate, predict, inspect, compare, serve, convert
    for command in COMMANDS:
        code, out, _ = run(capsys, command, "--help")
        helps = " ".join(out.split())
        assert code == 0 and "not:" not in helps
    _, out, _ = run(capsys, "train", "--help")
    assert ("--no-bucket switch off (on by default): length-bucketed batches (little padding) instead of plain "
            "random batches") in " ".join(out.split())


def _sentences(count: int, illegal_at: int = -1) -> str:
    """``count`` two-word BIO sentences; the one at ``illegal_at`` starts with ``I-PER`` (repaired on load)."""
    blocks = [f"{'Mary' if i != illegal_at else 'Ann'} {'B-PER' if i != illegal_at else 'I-PER'}\n"
              f"w{i} O\nParis B-LOC\n" for i in range(count)]
    return "\n".join(blocks)


def test_repairs_are_reported_only_for_sentences_the_command_reads(tmp_path):
    """A repaired gold sentence after --max-train-sentences, or in another split than evaluate's --split,
    was reported anyway."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text(_sentences(40, illegal_at=30), encoding="utf-8")
    (data / "dev.txt").write_text(_sentences(20, illegal_at=15), encoding="utf-8")
    (data / "test.txt").write_text(_sentences(20), encoding="utf-8")
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "mcrf", "train", data, "--output", run_dir, "--max-steps", "1",
                           "--max-train-sentences", "16", "--max-eval-sentences", "8", "--batch-size", "8"],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "gold sequences" not in done.stderr
    done = subprocess.run([sys.executable, "-m", "mcrf", "evaluate", run_dir / "model", data, "--split", "test"],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "gold sequences" not in done.stderr
    done = subprocess.run([sys.executable, "-m", "mcrf", "evaluate", run_dir / "model", data, "--split", "dev"],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"1 illegal BIO gold sequences (repair): {data / 'dev.txt'}:61: <start> -> I-PER" in done.stderr


# ---------------------------------------------------------------------------- compare's output
def test_compare_prints_the_header_once_a_line_per_cell_and_a_short_summary(tmp_path):
    """compare printed the 40-line settings header for every cell, then all of results.md (407 lines for the
    sample), and left cursor escapes (ESC [A) of nested progress bars in a log file."""
    out = tmp_path / "cmp"
    done = subprocess.run([sys.executable, "-m", "mcrf", "compare", "sample", "--variants", "crf-retain,mcrf",
                           "--seeds", "1", "--epochs", "1", "--max-train-sentences", "32", "--max-eval-sentences",
                           "16", "--resamples", "100", "--output", out], capture_output=True, text=True, env=ENV,
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    err = done.stderr
    assert "\x1b[" not in err
    assert err.count("mcrf training settings") == 1
    cells = [line for line in err.splitlines() if line.startswith("cell ")]
    assert [line.split(" (")[0] for line in cells] == ["cell crf-seed1", "cell mcrf-seed1"]
    assert "dev F1 crf-retain" in cells[0] and "dev F1 mcrf" in cells[1]
    lines = done.stdout.splitlines()
    assert lines[0] == f"results: {out / 'results.md'} (tables, command line, versions), results.json, results.png"
    assert lines[1].startswith("MCRF-training − CRF + Retain: ") and len(lines) <= 6, done.stdout
    assert any(line.startswith("caution: Only 1 seed") for line in lines)


# ---------------------------------------------------------------------------- the published table
def test_the_readme_compare_example_builds_the_published_atis_settings():
    """The README's `mcrf compare atis …` ran with the BiLSTM defaults (lr 1e-2, patience 3), not the
    published table's lr 3e-3 and --patience none: it could not reproduce the table."""
    import json
    import shlex

    from mcrf.cli.app import build_parser
    from mcrf.cli.util import build, encoder_options, given
    from mcrf.compare import CompareConfig

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    examples = [line for line in readme.splitlines() if line.startswith("mcrf compare atis ")]
    assert len(examples) == 2, examples
    published = json.loads((ROOT / "docs" / "results" / "atis-bilstm" / "results.json").read_text(encoding="utf-8"))
    for line in examples:
        argv = shlex.split(line.split("  #")[0])[1:]
        args = build_parser().parse_args(argv)
        config = build(CompareConfig, dataset=args.dataset, **given(args, args.fields),
                       train={**given(args, args.train_fields), **encoder_options(args)})
        settings = config.train_config()
        where = {"data_dir", "output_dir", "cpu", "num_workers", "eval_batch_size", "max_length", "stride"}
        for name, value in published["train_config"].items():
            if name in where or (value is None and settings.sources.get(name) == "default"):
                continue  # paths and speed knobs; an unresolved default recorded by an older mcrf
            assert getattr(settings, name) == value, (line, name)
        if "--seeds" in argv:
            assert list(config.seeds) == published["seeds"], line


# ---------------------------------------------------------------------------- offline inspect
def _offline_env(tmp_path, **extra):
    env = {k: v for k, v in ENV.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "MCRF_DATA_DIR")}
    return {**env, "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets"),
            "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"), **extra}


def test_a_registered_corpus_missing_offline_fails_fast_in_one_line(tmp_path):
    """`mcrf inspect wnut17` without --data-dir spent 29-45 s in `datasets` retrying an unreachable hub, then
    printed four lines (hub warnings, the error over three lines)."""
    unreachable = _offline_env(tmp_path, HF_ENDPOINT="http://127.0.0.1:9")  # the discard port: refused at once
    done = subprocess.run([sys.executable, "-m", "mcrf", "inspect", "wnut17"], capture_output=True, text=True,
                          env=unreachable, cwd=ROOT, timeout=300)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    err = done.stderr.strip()
    assert err.startswith("mcrf inspect: error: dataset 'wnut17' (WNUT-17 emerging entities `token<TAB>tag`) was "
                          "not found: looked in no local folder (no --data-dir given, MCRF_DATA_DIR unset). "
                          "Hugging Face hub: leondz/wnut_17: not in the local cache, and not tried: 127.0.0.1:9 is "
                          "unreachable (")
    assert err.endswith("in a folder DIR/wnut17/ (or DIR itself) and pass --data-dir DIR or set MCRF_DATA_DIR=DIR.")
    done = subprocess.run([sys.executable, "-m", "mcrf", "inspect", "wnut17", "--data-dir", tmp_path / "none"],
                          capture_output=True, text=True, env=_offline_env(tmp_path, HF_HUB_OFFLINE="1"), cwd=ROOT,
                          timeout=300)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert (f"looked in {tmp_path / 'none' / 'wnut17'} (--data-dir); {tmp_path / 'none'} (--data-dir). Hugging Face "
            "hub (HF_HUB_OFFLINE is set): leondz/wnut_17: not in the local cache, and not tried: HF_HUB_OFFLINE is "
            "set.") in done.stderr


def test_a_dataset_in_the_local_hub_cache_is_still_loaded_through_the_hub_code(tmp_path, monkeypatch):
    """Skipping an unreachable hub must not skip a copy `datasets` already has: that one is still tried."""
    from mcrf.data import hub

    monkeypatch.setenv("HF_HOME", str(tmp_path))
    for name in ("HF_DATASETS_CACHE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    assert not hub.cached("leondz/wnut_17")
    (tmp_path / "datasets" / "leondz___wnut_17").mkdir(parents=True)
    assert hub.cached("leondz/wnut_17")
    assert not hub.cached("eriktks/conll2003")
    (tmp_path / "hub" / "datasets--eriktks--conll2003").mkdir(parents=True)
    assert hub.cached("eriktks/conll2003")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.unreachable() == "HF_HUB_OFFLINE is set"
