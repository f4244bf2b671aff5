"""Safe outputs (``mcrf.io.outputs``, issue 8 cases 1, 2, 5 and the leftovers/modes of case 8).

The CLI cases run ``python -m mcrf predict`` in subprocesses, the way a user does; concurrency
cases use two real processes. Nothing here touches the real ``/dev/null`` or ``/dev/stdout``:
a character device made with ``mknod`` (null's numbers 1,3), a FIFO and symlinks inside
``tmp_path`` stand in for them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mcrf.errors import OutputError
from mcrf.io.outputs import TEMP_SUFFIX, check_output, clean_temporaries, open_output, save_text

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
LINES = ["John Smith flew to Paris .", "", "Maria Rossi visited Kyoto , Japan ."]


def mcrf(*argv, stdin: bytes = b"", timeout: float = 180) -> subprocess.CompletedProcess:
    """``python -m mcrf ARGV`` -> CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", "mcrf", *map(str, argv)], input=stdin.decode(), capture_output=True,
                          text=True, env=ENV, cwd=ROOT, timeout=timeout)


def popen(*argv, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mcrf", *map(str, argv)], env=ENV, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny untrained BiLSTM tagger (what it predicts does not matter here, only where it goes)."""
    from mcrf.data import load_corpus
    from mcrf.models import Tagger, TaggerConfig

    torch.manual_seed(0)
    corpus = load_corpus("sample")
    tagger = Tagger.build(TaggerConfig(encoder="bilstm", labels=corpus.labels, scheme=corpus.scheme,
                                       encoder_options=dict(word_dim=8, char_dim=4, char_filters=4, lstm_hidden=8)),
                          corpus.splits["train"])
    directory = tmp_path_factory.mktemp("outputs") / "model"
    tagger.save_pretrained(directory)
    return directory


@pytest.fixture
def text(tmp_path) -> Path:
    path = tmp_path / "in.txt"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def expected(model, tmp_path_factory) -> str:
    """What ``predict --format jsonl`` prints on stdout for ``LINES``."""
    source = tmp_path_factory.mktemp("expected") / "in.txt"
    source.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    done = mcrf("predict", source, "--model", model, "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["text"] for line in done.stdout.splitlines()] == LINES
    return done.stdout


def temporaries(folder: Path):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ---------------------------------------------------------------------------- case 1: what is at the path
def test_case1_a_character_device_is_written_in_place_not_replaced(model, text, tmp_path):
    """Case 1, ``--output /dev/null`` as root: the device stays a device (was replaced by a regular file)."""
    null = tmp_path / "null"
    try:
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError) as error:
        pytest.skip(f"mknod of a character device not permitted here: {error}")
    done = mcrf("predict", text, "--model", model, "--format", "jsonl", "--output", null)
    assert done.returncode == 0, done.stderr
    info = os.stat(null)
    assert stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(1, 3)
    assert temporaries(tmp_path) == []


def test_case1_a_fifo_feeds_its_reader_and_stays_a_fifo(model, text, expected, tmp_path):
    """Case 1: a named pipe's reader gets the predictions (it hung: the FIFO was replaced by a file)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE, text=True)
    try:
        done = mcrf("predict", text, "--model", model, "--format", "jsonl", "-o", fifo)
        assert done.returncode == 0, done.stderr
        out, _ = reader.communicate(timeout=60)
    finally:
        reader.kill()
        reader.wait()
    assert out == expected
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_case1_a_symlink_is_followed_and_kept(model, text, expected, tmp_path):
    """Case 1: the link's target gets the output; the link stays a link (it was replaced)."""
    (tmp_path / "results").mkdir()
    target = tmp_path / "results" / "out.jsonl"
    target.write_text("old\n", encoding="utf-8")
    link = tmp_path / "latest.jsonl"
    link.symlink_to(target)
    done = mcrf("predict", text, "--model", model, "--format", "jsonl", "-o", link)
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text(encoding="utf-8") == expected
    assert temporaries(tmp_path / "results") == []


def test_case1_output_to_the_own_stdout_prints(model, text, expected, tmp_path):
    """Case 1, ``-o /dev/stdout``: prints the predictions (printed nothing and exited 0).

    A symlink in ``tmp_path`` to ``/proc/self/fd/1`` is what ``/dev/stdout`` is, without going near it.
    """
    if not Path("/proc/self/fd/1").exists():
        pytest.skip("no /proc/self/fd here")
    stdout = tmp_path / "stdout"
    stdout.symlink_to("/proc/self/fd/1")
    done = mcrf("predict", text, "--model", model, "--format", "jsonl", "-o", stdout)
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected
    assert stdout.is_symlink() and os.readlink(stdout) == "/proc/self/fd/1"


# ---------------------------------------------------------------------------- case 2: two writers
def test_case2_two_predicts_to_one_output_both_leave_a_complete_file(model, tmp_path):
    """Case 2: two concurrent predicts into one ``--output``: both succeed, the file is one complete output.

    (They shared one ``.c.jsonl.partial``: one died with "No such file", the file held the other's
    records mixed with a truncated first run.)
    """
    inputs = {}
    for name, words in (("a", "John Smith flew to Paris ."), ("b", "Maria Rossi visited Kyoto .")):
        inputs[name] = [f"{words} {i}" for i in range(3000)]
        (tmp_path / f"{name}.txt").write_text("\n".join(inputs[name]) + "\n", encoding="utf-8")
    out = tmp_path / "c.jsonl"
    runs = [popen("predict", tmp_path / f"{name}.txt", "--model", model, "--format", "jsonl", "-o", out)
            for name in inputs]
    results = [run.communicate(timeout=300) for run in runs]
    for run, (_, err) in zip(runs, results):
        assert run.returncode == 0, err
        assert "Traceback" not in err
    texts = [json.loads(line)["text"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert texts in (inputs["a"], inputs["b"])
    assert temporaries(tmp_path) == []


def test_two_writer_processes_never_mix_and_leave_no_temporary(tmp_path):
    """The writer itself, two processes writing one path slowly at the same time: one wins whole."""
    target = tmp_path / "out.txt"
    code = ("import sys, time\nfrom mcrf.io.outputs import open_output\n"
            "with open_output(sys.argv[1]) as out:\n"
            "    for i in range(40):\n        out.write(sys.argv[2] * 1000 + '\\n'); out.flush(); time.sleep(0.01)\n")
    runs = [subprocess.Popen([sys.executable, "-c", code, str(target), letter], env=ENV, stderr=subprocess.PIPE,
                             text=True) for letter in "AB"]
    for run in runs:
        assert run.wait(timeout=120) == 0, run.stderr.read()
    content = target.read_text(encoding="utf-8")
    assert content in (("A" * 1000 + "\n") * 40, ("B" * 1000 + "\n") * 40)
    assert temporaries(tmp_path) == []


# ---------------------------------------------------------------------------- case 5: the input itself
def test_case5_output_equal_to_the_input_is_refused_before_any_work(text, tmp_path):
    """Case 5: ``-o`` the input file (as given, respelled, or through a symlink) is refused, the input kept.

    ``--model`` does not exist: the output check comes first, before the model is loaded.
    """
    original = text.read_bytes()
    link = tmp_path / "link.txt"
    link.symlink_to(text)
    for output in (text, tmp_path / "." / "in.txt", link):
        done = mcrf("predict", text, "--model", tmp_path / "no-model", "-o", output)
        assert done.returncode == 1, done.stderr
        assert "it is the input file" in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert text.read_bytes() == original
    with open(text, "rb") as stdin:  # mcrf predict - -o in.txt < in.txt
        done = subprocess.run([sys.executable, "-m", "mcrf", "predict", "-", "--model", str(tmp_path / "no-model"),
                               "-o", str(text)], stdin=stdin, capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 1 and "it is standard input" in done.stderr
    assert text.read_bytes() == original


def test_issue17_defect3_stdout_appending_to_the_input_is_refused_like_cat(text, tmp_path):
    """``mcrf predict in.txt >> in.txt`` read its own output back without end (5,000 -> 25,480 lines in 60 s).

    Refused before the model is loaded (``--model`` does not exist), for a named input and for stdin.
    """
    original = text.read_bytes()
    for argv, stdin_path in ((["predict", str(text)], None), (["predict", "-"], text)):
        with open(text, "ab") as stdout, (open(stdin_path, "rb") if stdin_path else open(os.devnull, "rb")) as stdin:
            done = subprocess.run([sys.executable, "-m", "mcrf", *argv, "--model", str(tmp_path / "no-model")],
                                  stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, text=True, env=ENV,
                                  timeout=120)
        assert done.returncode == 1, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
        assert "cannot write the output to standard output" in done.stderr
        assert ("standard input" if stdin_path else "the input file") in done.stderr
        assert text.read_bytes() == original
    with open(tmp_path / "other.txt", "wb") as stdout:  # another file as stdout is fine (it gets to the model)
        done = subprocess.run([sys.executable, "-m", "mcrf", "predict", str(text), "--model",
                               str(tmp_path / "no-model")], stdout=stdout, stderr=subprocess.PIPE, text=True,
                              env=ENV, timeout=120)
    assert done.returncode == 1 and "standard output" not in done.stderr and "no-model" in done.stderr


def test_a_directory_or_a_missing_folder_as_output_is_refused_before_any_work(text, tmp_path):
    done = mcrf("predict", text, "--model", tmp_path / "no-model", "-o", tmp_path)
    assert done.returncode == 1 and "it is a directory" in done.stderr and "Traceback" not in done.stderr
    done = mcrf("predict", text, "--model", tmp_path / "no-model", "-o", tmp_path / "nope" / "out.txt")
    assert done.returncode == 1 and "does not exist; create it first" in done.stderr


# ---------------------------------------------------------------------------- case 8: leftovers and modes
def test_case8_a_killed_predict_leaves_the_output_alone_and_the_next_run_cleans_up(model, text, tmp_path):
    """Case 8: a predict killed mid-write leaves no output and a temporary nobody can take for output;
    the next run into that folder (another output name) removes it (``.OUT.partial`` survived)."""
    out = tmp_path / "a.jsonl"
    killed = popen("predict", "-", "--model", model, "--format", "jsonl", "--batch-size", "1", "--chunk-batches", "1",
                   "-o", out, stdin=subprocess.PIPE)
    try:
        killed.stdin.write("John Smith flew to Paris .\n")
        killed.stdin.flush()
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".a.jsonl*")) and time.monotonic() < deadline:
            assert killed.poll() is None, killed.stderr.read()
            time.sleep(0.1)
        left = list(tmp_path.glob(".a.jsonl*"))
        assert left, "the predict never opened its output"
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.communicate()
    assert not out.exists()
    assert [p.name.endswith(TEMP_SUFFIX) for p in left] == [True]
    done = mcrf("predict", text, "--model", model, "-o", tmp_path / "b.conll")
    assert done.returncode == 0, done.stderr
    assert temporaries(tmp_path) == []


def test_case8_a_killed_model_save_leaves_nothing_behind_after_the_next_save(model, tmp_path):
    """Case 8: ``.model.tmp.saving-*`` leftovers of a killed save survived later saves."""
    code = ("import sys, time\nimport mcrf.models.card as card\nfrom mcrf.models import Tagger\n"
            "card.model_card = lambda *a, **k: (print('saving', flush=True), time.sleep(600))\n"
            "Tagger.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2])\n")
    target = tmp_path / "runs" / "model"
    saving = subprocess.Popen([sys.executable, "-c", code, str(model), str(target)], env=ENV, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert saving.stdout.readline().strip() == "saving", saving.stderr.read()
    finally:
        saving.kill()
        saving.communicate()
    assert temporaries(tmp_path / "runs")  # the killed save's staging folder
    from mcrf.models import Tagger

    Tagger.from_pretrained(model).save_pretrained(target)
    assert temporaries(tmp_path / "runs") == [] and (target / "config.json").is_file()


def test_case8_saved_models_and_outputs_follow_the_umask(model, tmp_path):
    """Case 8: a saved model was 0700/0600 (mkdtemp, safetensors); now 0755/0644 under umask 022,
    0750/0640 under 027, like ``save_pretrained`` in transformers. New outputs follow it too."""
    code = ("import os, sys\nos.umask(int(sys.argv[3], 8))\nfrom mcrf.models import Tagger\n"
            "from mcrf.io.outputs import save_text\n"
            "Tagger.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2] + '/model')\n"
            "save_text(sys.argv[2] + '/out.txt', 'x')\n")
    for umask, folder_mode, file_mode in (("022", 0o755, 0o644), ("027", 0o750, 0o640)):
        where = tmp_path / umask
        where.mkdir()
        done = subprocess.run([sys.executable, "-c", code, str(model), str(where), umask], env=ENV,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert stat.S_IMODE(os.stat(where / "model").st_mode) == folder_mode
        for path in (where / "model").rglob("*"):
            assert stat.S_IMODE(os.stat(path).st_mode) == (folder_mode if path.is_dir() else file_mode), path
        assert stat.S_IMODE(os.stat(where / "out.txt").st_mode) == file_mode


# ---------------------------------------------------------------------------- the writer's API
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old\n", encoding="utf-8")
    target.chmod(0o600)
    with pytest.raises(KeyboardInterrupt):
        with open_output(target) as out:
            out.write("half of the new")
            raise KeyboardInterrupt
    assert target.read_text(encoding="utf-8") == "old\n" and temporaries(tmp_path) == []
    save_text(target, "new\n")
    assert target.read_text(encoding="utf-8") == "new\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600  # a replaced file keeps its permissions


def test_check_output_resolves_links_and_refuses_directories_and_inputs(tmp_path):
    (tmp_path / "in.txt").write_text("x\n", encoding="utf-8")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "new.txt")  # dangling: writing creates the target
    assert check_output(link) == tmp_path / "new.txt"
    assert check_output(tmp_path / "in.txt", inputs=["-", tmp_path / "other.txt"]) == tmp_path / "in.txt"
    for bad, inputs, message in ((tmp_path, (), "directory"), (tmp_path / "in.txt", [tmp_path / "in.txt"], "input"),
                                 (tmp_path / "x" / "y.txt", (), "does not exist")):
        with pytest.raises(OutputError, match=message):
            check_output(bad, inputs=inputs)


def test_clean_temporaries_spares_a_living_writer(tmp_path):
    """The cleanup of one writer never removes the temporary another living writer is filling."""
    code = ("import sys, time\nfrom mcrf.io.outputs import open_output\n"
            "with open_output(sys.argv[1]) as out:\n    print('open', flush=True); out.write('done'); time.sleep(3)\n")
    writer = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "out.txt")], env=ENV, text=True,
                              stdout=subprocess.PIPE)
    try:
        assert writer.stdout.readline().strip() == "open"
        assert clean_temporaries(tmp_path) == [] and len(temporaries(tmp_path)) == 1
    finally:
        assert writer.wait(timeout=60) == 0
    assert (tmp_path / "out.txt").read_text() == "done" and temporaries(tmp_path) == []


# ---------------------------------------------------------------------------- case 8: line safety
def test_case8_line_breaks_inside_a_line_never_split_a_record(model, tmp_path):
    """Case 8: U+2028/U+0085/lone CR were written raw, so line-based readers saw extra lines. Now jsonl
    escapes them (``text`` is the input line exactly) and text/conll echo them as spaces."""
    lines = ["John\u2028Smith flew to Paris", "Maria\x85Rossi\rvisited\u2029Kyoto", "plain line"]
    source = tmp_path / "in.txt"
    source.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    outputs = {}
    for name in ("jsonl", "text", "conll"):
        done = mcrf("predict", source, "--model", model, "--format", name, "-o", tmp_path / f"out.{name}")
        assert done.returncode == 0, done.stderr
        outputs[name] = (tmp_path / f"out.{name}").read_bytes().decode("utf-8")
    records = outputs["jsonl"].splitlines()  # str.splitlines breaks at all of them
    assert len(records) == len(lines) and [json.loads(r)["text"] for r in records] == lines
    assert "\u2028" not in outputs["jsonl"] and "\\u2028" in outputs["jsonl"]
    markup = [re.sub(r"\[([^\]]*)\]\{[^}]*\}", r"\1", line) for line in outputs["text"].splitlines()]
    assert markup == ["John Smith flew to Paris", "Maria Rossi visited Kyoto", "plain line"]
    sentences = outputs["conll"].split("\n\n")[:-1]
    assert [len(block.splitlines()) for block in sentences] == [5, 4, 2]
