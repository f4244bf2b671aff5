"""The ``mcrf`` command line, run for real: ``main(argv)`` with capsys and a few ``python -m mcrf`` subprocesses.

Models: one tiny ``mcrf train sample`` run through the CLI (module fixture), a small BiLSTM tagger
trained a few steps on the sample corpus, and a tiny random BERT with a 16-sub-word window for the
5,000-word line. Nothing is downloaded (``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import dataclasses

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mcrf import __version__
from mcrf.cli.app import main
from mcrf.data import load_corpus
from mcrf.errors import UserError
from mcrf.models import Tagger, TaggerConfig
from mcrf.training import TrainConfig

import tiny_models as tm

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "mcrf" / "data" / "sample"  # package data
# one intra-op thread: the models here are tiny, and 2 OpenMP threads on a loaded 2-core machine thrash (10x slower)
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
LINES = ["John Smith flew to  Paris with Acme Corp .", "", "\tMaria Rossi visited Kyoto, Japan.",
         "São Paulo  hosts the European Union summit", ""]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Run this module's tiny models on one intra-op thread (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(capsys, *argv):
    """``main(argv)`` -> (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_module(*argv, stdin: bytes = b""):
    """``python -m mcrf argv`` in a subprocess -> CompletedProcess (bytes)."""
    return subprocess.run([sys.executable, "-m", "mcrf", *map(str, argv)], input=stdin, capture_output=True,
                          env=ENV, cwd=ROOT, timeout=120)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, one_thread):
    """A real (tiny) ``mcrf train sample`` through ``main``: (exit code, stdout, output dir)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    output = tmp_path_factory.mktemp("runs") / "sample"
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["train", "sample", "--output", str(output), "--max-steps", "3", "--max-train-sentences", "48",
                     "--max-eval-sentences", "24", "--quiet"])
    return code, out.getvalue(), output


# ---------------------------------------------------------------------------- help, version, usage
@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "inspect"])
def test_help_of_every_command(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert f"usage: mcrf {command}" in out and "examples:" in out and "--debug" in out


def test_predict_help_describes_every_output_format(capsys):
    """The "formats:" paragraph of `mcrf predict --help` described conll, jsonl and text, not html (probe)."""
    from mcrf.predict.formats import FORMATS

    _, out, _ = run(capsys, "predict", "--help")
    described = " ".join(out.split("formats:")[-1].split())
    assert all(f"{name} = " in described for name in FORMATS), described


def test_top_level_help_version_and_no_command(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and all(c in out for c in ("train", "evaluate", "predict", "inspect", "quickstart"))
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"mcrf {__version__}"
    code, _, err = run(capsys)
    assert code == 2 and "usage: mcrf" in err


def test_every_train_flag_has_help_and_the_sample_preset_is_shown(capsys):
    _, out, _ = run(capsys, "train", "--help")
    offered = [f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli")]
    for field in offered + ["max_length", "stride"]:  # the last two: options of the Hugging Face encoders
        if field != "dataset":
            flag = "--output" if field == "output_dir" else "--no-bucket" if field == "bucket" else \
                "--" + field.replace("_", "-")
            assert flag in out, field
    assert "preset: encoder=bilstm" in out.replace("\n", " ")
    assert "``" not in out


@pytest.mark.parametrize("argv, message", [
    (["train", "sample", "--epochs", "0"], "expected --epochs to be a positive integer"),
    (["train", "sample", "--decoder", "lstm"], "unknown --decoder 'lstm'; expected one of mcrf,"),
    (["train", "sample", "--lr", "-1"], "0 < --lr <= 1"),
    (["train", "sample", "--head-lr", "inf"], "expected a finite number 0 < --head-lr <= 1"),
    (["train", "sample", "--head-lr", "nan"], "expected a finite number 0 < --head-lr <= 1"),
    (["train", "sample", "--max-grad-norm=-inf"], "--max-grad-norm"),
    (["train", "sample", "--encoder", "x/bert", "--stride", "600", "--max-length", "512"],
     "expected stride < max_length=512"),
    (["train", "sample", "--max-length", "512"], "the bilstm encoder ('bilstm') has no option max_length"),
    (["inspect", "sample", "--policy", "fix"], "unknown --policy 'fix'"),
    # a refused value names the flag the user typed, also where it differs from the field (output_format)
    (["predict", "-", "--format", "xml"], "unknown --format 'xml'; expected one of conll,"),
    (["predict", "-", "--batch-size", "0"], "expected --batch-size to be a positive integer, got 0"),
    (["compare", "sample", "--seeds", "1,1"], "expected --seeds to be one or more distinct integer seeds"),
])
def test_usage_errors_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_train_flags_map_onto_train_config(capsys, monkeypatch, tmp_path):
    seen = {}

    def fake_train(config, **options):
        seen["config"] = config
        raise UserError("stop here")  # any user error ends the command with exit 1

    monkeypatch.setattr("mcrf.training.train", fake_train)
    code, _, err = run(capsys, "train", "sample", "--output", tmp_path, "--lr", "0.01", "--no-bucket",
                       "--patience", "none", "--eval-every", "5", "--scheme", "bioes", "--resume")
    assert code == 1 and "stop here" in err
    expected = TrainConfig.for_dataset("sample", output_dir=str(tmp_path), lr=0.01, bucket=False, patience=None,
                                       eval_every=5, scheme="bioes", resume=True)
    assert seen["config"] == expected


def test_train_data_flags_map_onto_train_config(capsys, monkeypatch, tmp_path):
    seen = {}

    def fake_train(config, **options):
        seen["config"] = config
        raise UserError("stop here")  # any user error ends the command with exit 1

    monkeypatch.setattr("mcrf.training.train", fake_train)
    code, _, err = run(capsys, "train", "sample", "--output", tmp_path, "--policy", "drop", "--dev-fraction", "0.2",
                       "--separator", "\t", "--token-column", "1", "--tag-column", "-1", "--encoding", "latin-1",
                       "--source-scheme", "iob1")
    assert code == 1 and "stop here" in err
    assert seen["config"] == TrainConfig.for_dataset(
        "sample", output_dir=str(tmp_path), policy="drop", dev_fraction=0.2, separator="\t", token_column=1,
        tag_column=-1, encoding="latin-1", source_scheme="iob1")
    code, _, err = run(capsys, "train", "sample", "--encoding", "utf8x")
    assert code == 2 and "unknown --encoding 'utf8x'" in err
    code, _, err = run(capsys, "train", "sample", "--dev-fraction", "1.5")
    assert code == 2 and "--dev-fraction" in err and "Traceback" not in err


# ---------------------------------------------------------------------------- train / evaluate / inspect
def test_train_sample_end_to_end(trained_run, text_input, capsys):
    code, out, output = trained_run
    assert code == 0
    assert "dev (sample)" in out and "test (sample)" in out and "micro avg" in out and "illegal paths" in out
    assert f"model saved to {output / 'model'}" in out
    assert (output / "model" / "config.json").is_file() and (output / "metrics.json").is_file()
    code, out, _ = run(capsys, "predict", text_input, "--model", output / "model", "--format", "text")
    assert code == 0 and len(out.splitlines()) == len(LINES)


def test_train_refuses_a_used_output_dir_and_unknown_datasets(trained_run, capsys):
    _, _, output = trained_run
    code, _, err = run(capsys, "train", "sample", "--output", output, "--max-steps", "1")
    assert code == 1 and "--resume" in err and "--overwrite" in err and "Traceback" not in err
    code, _, err = run(capsys, "train", "no-such-set", "--output", output.parent / "other", "--max-steps", "1")
    assert code == 1 and "no dataset 'no-such-set'" in err and "Traceback" not in err


def test_evaluate_table_and_json(sample_model, capsys):
    code, out, _ = run(capsys, "evaluate", sample_model, "sample", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["split"] == "test" and result["num_sentences"] == len(load_corpus("sample").splits["test"])
    assert result["illegal_path_rate"] == 0.0 and result["sentences_per_second"] > 0
    assert set(result["per_type"]) == {"LOC", "MISC", "ORG", "PER"} and 0 <= result["f1"] <= 1
    code, out, _ = run(capsys, "evaluate", sample_model, "sample", "--split", "dev")
    assert code == 0 and "micro avg" in out and "macro avg" in out and "illegal paths: 0" in out
    code, _, err = run(capsys, "evaluate", sample_model, "sample", "--split", "validation")
    assert code == 1 and "pass --split with one of ['dev', 'test', 'train']" in err


def test_evaluate_flags_map_onto_evaluate_config(sample_model, capsys, monkeypatch):
    from mcrf.evaluation import EvaluateConfig

    seen = {}

    def fake_evaluate(tagger, sentences, batch_size):
        seen.update(sentences=len(sentences), batch_size=batch_size)
        raise UserError("stop here")  # any user error ends the command with exit 1

    monkeypatch.setattr("mcrf.evaluation.evaluate", fake_evaluate)
    code, _, err = run(capsys, "evaluate", sample_model, "sample")
    assert code == 1 and "stop here" in err
    defaults = EvaluateConfig()
    assert seen == {"sentences": len(load_corpus("sample").splits[defaults.split]), "batch_size": defaults.batch_size}
    code, _, _ = run(capsys, "evaluate", sample_model, "sample", "--split", "dev", "--batch-size", "5")
    assert code == 1 and seen == {"sentences": len(load_corpus("sample").splits["dev"]), "batch_size": 5}
    _, out, _ = run(capsys, "evaluate", "--help")
    assert f"(default: {defaults.split})" in out and f"(default: {defaults.batch_size})" in out
    assert run(capsys, "evaluate", sample_model, "sample", "--split", "")[0] == 2


def _blocks(path: Path) -> int:
    return len([b for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip()])


def test_inspect_json_and_text(capsys):
    code, out, _ = run(capsys, "inspect", "sample", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["scheme"] == "BIO"
    for split, name in (("train", "train.txt"), ("dev", "dev.txt"), ("test", "test.txt")):
        assert info["splits"][split]["sentences"] == _blocks(SAMPLE / name)
        assert info["splits"][split]["illegal"] == 0
    code, out, _ = run(capsys, "inspect", "sample", "--scheme", "BIOES")
    assert code == 0 and "scheme BIOES" in out and "entities per type" in out
    code, _, err = run(capsys, "inspect", "nope")
    assert code == 1 and "not a registered name" in err and "Traceback" not in err


def test_inspect_labels_that_do_not_fit_the_scheme(capsys, tmp_path):
    (tmp_path / "train.txt").write_text("a B-X\nb I-X\n\nc I-Y\n", encoding="utf-8")
    code, _, err = run(capsys, "inspect", tmp_path, "--policy", "error")
    assert code == 1 and "train.txt:4" in err and "Traceback" not in err


def test_inspect_separator_and_dev_fraction_flags(capsys, tmp_path):
    rows = ["New York\tB-LOC", "is\tO", "", "Ann Lee\tB-PER", "", "Paris\tB-LOC", "", "big\tO", ""]
    (tmp_path / "train.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    code, _, err = run(capsys, "inspect", tmp_path)
    assert code == 1 and "--separator" in err
    code, out, _ = run(capsys, "inspect", tmp_path, "--separator", "\t", "--json")
    assert code == 0 and json.loads(out)["splits"]["train"]["sentences"] == 4
    code, out, _ = run(capsys, "inspect", tmp_path, "--separator", "\t", "--dev-fraction", "0.5", "--json")
    splits = json.loads(out)["splits"]
    assert code == 0 and splits["train"]["sentences"] == 2 and splits["dev"]["sentences"] == 2
    code, _, err = run(capsys, "inspect", tmp_path, "--separator", "\t", "--dev-fraction", "1.5")
    assert code == 2 and "--dev-fraction" in err


# ---------------------------------------------------------------------------- predict
@pytest.fixture()
def text_input(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return path


def test_predict_jsonl_offsets_slice_the_original_lines(sample_model, text_input, tmp_path, capsys):
    target = tmp_path / "out.jsonl"
    code, out, err = run(capsys, "predict", text_input, "--model", sample_model, "--format", "jsonl", "-o", target)
    assert code == 0 and out == "" and f"wrote {len(LINES)} sentences to {target}" in err
    records = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in records] == LINES
    for record in records:
        assert len(record["tags"]) == len(record["tokens"]) == len(record["token_confidences"])
        for span in record["spans"]:
            assert record["text"][span["char_start"]:span["char_end"]] == span["text"]
            assert 0 < span["confidence"] <= 1
    assert sum(len(r["spans"]) for r in records) > 0
    assert not list(tmp_path.glob(".*partial"))


def test_predict_conll_and_text_formats(sample_model, text_input, capsys):
    code, out, _ = run(capsys, "predict", text_input, "--model", sample_model, "--format", "conll")
    assert code == 0
    sentences, current = [], []
    for line in out.split("\n")[:-1]:
        if line:
            token, tag = line.split("\t")
            current.append((token, tag))
        else:
            sentences.append(current)
            current = []
    assert len(sentences) == len(LINES) and [len(s) for s in sentences][1] == 0
    assert [t for t, _ in sentences[0]] == ["John", "Smith", "flew", "to", "Paris", "with", "Acme", "Corp", "."]
    code, out, _ = run(capsys, "predict", text_input, "--model", sample_model, "--format", "text")
    assert code == 0
    marked = out.split("\n")[:-1]
    assert len(marked) == len(LINES)
    import re

    for original, line in zip(LINES, marked):
        assert re.sub(r"\[([^\[\]]*)\]\{\w+\}", r"\1", line) == original


def test_predict_conll_input_ignores_tags(sample_model, capsys):
    code, out, _ = run(capsys, "predict", SAMPLE / "test.txt", "--input-format", "conll", "--model", sample_model,
                       "--format", "jsonl", "--batch-size", "7")
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    gold = load_corpus("sample").splits["test"]
    assert [r["tokens"] for r in records] == [list(s.tokens) for s in gold]


def test_predict_empty_input_and_input_errors(sample_model, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert run(capsys, "predict", empty, "--model", sample_model)[:2] == (0, "")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\ncaf\xe9 latin-1\n")
    code, out, err = run(capsys, "predict", bad, "--model", sample_model)
    assert code == 1 and f"{bad}:2: expected utf-8 text, got byte 0xe9" in err and "iconv" in err and "Traceback" not in err
    code, _, err = run(capsys, "predict", bad, "--model", sample_model, "--debug")
    assert code == 1 and "Traceback" in err
    code, _, err = run(capsys, "predict", tmp_path / "none.txt", "--model", sample_model)
    assert code == 1 and "is not a file" in err
    code, _, err = run(capsys, "predict", empty, "--model", sample_model, "-o", tmp_path / "no" / "out.txt")
    assert code == 1 and "does not exist; create it first" in err


def test_predict_model_errors(text_input, tmp_path, capsys):
    code, _, err = run(capsys, "predict", text_input, "--model", tmp_path / "no" / "model")
    assert code == 1 and "expected a model folder at" in err and "found nothing" in err and "Traceback" not in err
    (tmp_path / "empty_model").mkdir()
    code, _, err = run(capsys, "predict", text_input, "--model", tmp_path / "empty_model")
    assert code == 1 and "expected a model folder (with config.json) or a training output folder" in err
    assert "Traceback" not in err


def _broken_copy(model: Path, target: Path, name: str, content: bytes) -> Path:
    import shutil

    shutil.copytree(model, target)
    (target / name).write_bytes(content)
    return target


def _config_with(model: Path, **changes) -> bytes:
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    return json.dumps({**config, **changes}).encode()


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_corrupt_or_foreign_model_files_are_one_clear_error(command, sample_model, text_input, tmp_path, capsys):
    broken = {
        "weights": ("model.safetensors", b"\x00garbage, not safetensors"),
        "labels": ("config.json", _config_with(sample_model, labels="O")),
        "json": ("config.json", b"{not json"),
        "field": ("config.json", _config_with(sample_model, colour="blue")),
    }
    for case, (name, content) in broken.items():
        model = _broken_copy(sample_model, tmp_path / case, name, content)
        argv = (["predict", text_input, "--model", model] if command == "predict"
                else ["evaluate", model, "sample"])
        code, out, err = run(capsys, *argv)
        assert code == 1, (case, err)
        assert f"{model}/" in err and ("save the model again" in err or "upgrade mcrf" in err), (case, err)
        assert "valid tagger config" in err or "damaged" in err or "not valid JSON" in err, (case, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and out == "", (case, err)
    code, _, err = run(capsys, *argv, "--debug")
    assert code == 1 and "Traceback" in err


@pytest.mark.parametrize("argv", [
    ["predict", "in.txt", "--model", "m", "--encoding", "utf8x"],
    ["inspect", "sample", "--encoding", "utf8x"],
    ["evaluate", "m", "sample", "--encoding", "utf8x"],
])
def test_unknown_encodings_are_usage_errors(capsys, argv):
    code, _, err = run(capsys, *argv)
    assert code == 2 and "unknown --encoding 'utf8x'" in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_bad_or_missing_devices_are_usage_errors(sample_model, text_input, capsys):
    code, _, err = run(capsys, "predict", text_input, "--model", sample_model, "--device", "gpu0")
    assert code == 2 and "unknown device 'gpu0'" in err and "Traceback" not in err
    code, _, err = run(capsys, "evaluate", sample_model, "sample", "--device", "cuda")
    assert code == 2 and "no CUDA device is available here; pass --device cpu" in err and "Traceback" not in err


def test_predict_a_5000_word_line_with_a_windowed_encoder(tmp_path, capsys):
    torch.manual_seed(0)
    bert = tm.make_bert_dir(tmp_path / "bert", max_positions=64)
    tagger = Tagger.build(TaggerConfig(encoder=str(bert), labels=tm.TOY_LABELS,
                                       encoder_options=dict(max_length=16, stride=4)))
    tagger.save_pretrained(tmp_path / "model")
    words = (tm.PERSONS + tm.PLACES + tm.FILLER + ["unseenword"]) * 200
    line = " ".join(words[:5000])
    source = tmp_path / "long.txt"
    source.write_text(f"{line}\n\njohn visited paris .\n", encoding="utf-8")
    code, out, _ = run(capsys, "predict", source, "--model", tmp_path / "model", "--format", "jsonl")
    assert code == 0
    records = [json.loads(x) for x in out.splitlines()]
    assert [len(r["tokens"]) for r in records] == [5000, 0, 4]
    assert len(records[0]["tags"]) == 5000 and records[0]["tokens"] == words[:5000]
    assert all(set(r["tags"]) <= set(tm.TOY_LABELS) for r in records)


# ---------------------------------------------------------------------------- real subprocesses
def test_module_version_and_unknown_dataset_subprocess():
    done = run_module("--version")
    assert done.returncode == 0 and done.stdout.decode().strip() == f"mcrf {__version__}"
    done = run_module("inspect", "no-such-set")
    err = done.stderr.decode()
    assert done.returncode == 1 and "no dataset 'no-such-set'" in err and "Traceback" not in err


def test_module_predict_from_stdin_subprocess(sample_model):
    stdin = ("\n".join(LINES) + "\n").encode()
    done = run_module("predict", "-", "--model", sample_model, "--format", "jsonl", stdin=stdin)
    assert done.returncode == 0, done.stderr.decode()
    records = [json.loads(x) for x in done.stdout.decode("utf-8").splitlines()]
    assert [r["text"] for r in records] == LINES
    # no progress bar when stderr is not a terminal, and plain text is read as text without a word
    assert done.stderr.decode() == ""


def test_module_predict_bad_bytes_on_stdin_subprocess(sample_model):
    done = run_module("predict", "-", "--model", sample_model, stdin=b"ok\n\xff\xfe broken\n")
    err = done.stderr.decode()
    assert done.returncode == 1 and "<stdin>:2: expected utf-8 text, got byte 0xff" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_threads_flag_and_a_directory_as_input(sample_model, tmp_path, capsys):
    before = torch.get_num_threads()
    try:
        code, out, _ = run(capsys, "--threads", "1", "inspect", "sample", "--json")
        assert code == 0 and torch.get_num_threads() == 1 and json.loads(out)["scheme"] == "BIO"
    finally:
        torch.set_num_threads(before)
    assert run(capsys, "inspect", "sample", "--threads", "0")[0] == 2
    code, _, err = run(capsys, "predict", tmp_path, "--model", sample_model)
    assert code == 1 and "is not a file" in err


def test_main_asks_openmp_for_passive_waits_unless_the_user_chose(capsys, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert run(capsys, "--version")[0] == 0 and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert run(capsys, "--version")[0] == 0 and os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
