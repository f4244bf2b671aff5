"""A model folder is data, never code (issue 17 defect 1), and a broken one is one line naming the file.

The CLI runs in subprocesses (``python -m mcrf``) on a tiny BERT tagger saved by
``tests/tiny_models.py``; each test copies it and breaks the copy the way the issue did.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tiny_models as tm
from tiny_models import one_torch_thread  # noqa: F401  (autouse fixture)

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def mcrf(*argv, stdin: bytes = b"", timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mcrf", *map(str, argv)], input=stdin, capture_output=True,
                          env=ENV, cwd=ROOT, timeout=timeout)


def one_line(done: subprocess.CompletedProcess) -> str:
    err = done.stderr.decode()
    lines = [line for line in err.strip().splitlines() if "reading sentences from" not in line]
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def bert_tagger(tmp_path_factory) -> Path:
    """A saved tiny BERT tagger folder (random weights; only loading matters here)."""
    from mcrf.models import Tagger, TaggerConfig

    root = tmp_path_factory.mktemp("trust")
    bert = tm.make_bert_dir(root / "bert")
    Tagger.build(TaggerConfig(encoder=str(bert), labels=tm.TOY_LABELS,
                                   encoder_options=dict(max_length=16, stride=4))).save_pretrained(
        root / "model")
    return root / "model"


def copy_of(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(folder, target)
    return target


def plant_custom_tokenizer(model: Path, marker: Path) -> None:
    """The issue's reproduction: ``auto_map`` to a class in ``tokenizer/evil.py``, which writes ``marker``."""
    path = model / "tokenizer" / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config.pop("tokenizer_class", None)  # else transformers picks its own class and never asks
    config["auto_map"] = {"AutoTokenizer": [None, "evil.EvilTok"]}
    path.write_text(json.dumps(config))
    (model / "tokenizer" / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import BertTokenizerFast\n\nclass EvilTok(BertTokenizerFast):\n    pass\n")


# ---------------------------------------------------------------------------- defect 1: no code runs
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_defect1_a_model_folder_with_auto_map_is_refused_and_runs_nothing(bert_tagger, tmp_path, command):
    model = copy_of(bert_tagger, tmp_path)
    marker = tmp_path / "MARKER"
    plant_custom_tokenizer(model, marker)
    argv = ["predict", "-", "--model", model] if command == "predict" else ["evaluate", model, "sample"]
    done = mcrf(*argv, stdin=b"y\nsome text\n")
    assert not marker.exists(), "the model folder's code ran"
    assert done.returncode == 1, done.stderr.decode()
    assert b"custom code" not in done.stdout and b"[y/N]" not in done.stdout + done.stderr  # nothing asked
    assert done.stdout == b""  # and no input was tagged
    line = one_line(done)
    assert "tokenizer_config.json" in line and "auto_map" in line and "never runs code" in line


def test_defect1_auto_map_in_the_saved_encoder_config_is_refused_too(bert_tagger, tmp_path):
    from mcrf.errors import ModelDirError
    from mcrf.models import Tagger

    model = copy_of(bert_tagger, tmp_path)
    config = json.loads((model / "config.json").read_text())
    config["encoder_state"]["encoder_config"]["auto_map"] = {"AutoModel": "evil.EvilModel"}
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelDirError, match=r"config\.json asks to run Python code"):
        Tagger.from_pretrained(model)


def test_defect1_every_transformers_from_pretrained_passes_trust_remote_code_false():
    """Without it, transformers prompts on stdout and reads the answer from stdin (the user's data)."""
    calls = []
    for path in (ROOT / "mcrf").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "from_pretrained" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id.startswith("Auto")):
                trust = [k.value for k in node.keywords if k.arg == "trust_remote_code"]
                calls.append((f"{path.relative_to(ROOT)}:{node.lineno}", trust))
    assert len(calls) >= 3, calls  # the tokenizer (twice) and the encoder
    unsafe = [where for where, trust in calls if not (trust and isinstance(trust[0], ast.Constant)
                                                      and trust[0].value is False)]
    assert not unsafe, f"from_pretrained without trust_remote_code=False at {unsafe}"


def test_defect1_training_from_an_encoder_folder_with_auto_map_is_refused(tmp_path):
    from mcrf.errors import ModelDirError
    from mcrf.models.encoders.hf import load_encoder

    bert = tm.make_bert_dir(tmp_path / "bert")
    config = json.loads((bert / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "evil.EvilModel"}
    (bert / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelDirError, match=r"bert/config\.json asks to run Python code"):
        load_encoder(str(bert))


# ---------------------------------------------------------------------------- defect 4 and model-loading rough edges
SMALL_LSTM = dict(word_dim=8, char_dim=4, char_filters=4, lstm_hidden=8)


@pytest.fixture(scope="module")
def bilstm_tagger(tmp_path_factory) -> Path:
    """A saved tiny BiLSTM tagger folder."""
    from mcrf.models import Tagger, TaggerConfig

    folder = tmp_path_factory.mktemp("bilstm") / "model"
    Tagger.build(TaggerConfig(labels=tm.TOY_LABELS, encoder_options=SMALL_LSTM), tm.toy_sentences(10)).save_pretrained(
        folder)
    return folder


def run_main(capsys, *argv):
    """``main(argv)`` in this process -> (exit code, stderr)."""
    from mcrf.cli.app import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def edit_config(**changes):
    def edit(model: Path) -> None:
        config = json.loads((model / "config.json").read_text())
        for key, value in changes.items():
            if key == "encoder_options":
                config[key].update(value)
            else:
                config[key] = value
        (model / "config.json").write_text(json.dumps(config))
    return edit


def edit_weights(name, change):
    def edit(model: Path) -> None:
        from safetensors.torch import load_file, save_file

        state = load_file(model / "model.safetensors")
        state[name] = change(state[name])
        save_file(state, model / "model.safetensors", metadata={"format": "pt"})
    return edit


def drop_tensor(name):
    def edit(model: Path) -> None:
        from safetensors.torch import load_file, save_file

        state = load_file(model / "model.safetensors")
        del state[name]
        save_file(state, model / "model.safetensors", metadata={"format": "pt"})
    return edit


def nested_config(model: Path) -> None:
    (model / "config.json").write_text('{"format": "mcrf-tagger", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")


BROKEN = {  # name -> (how the copy is broken, the file named, what the one line says)
    "nested_100000_levels": (nested_config, "config.json", "nested too deeply"),
    "nan_weights": (edit_weights("head.weight", lambda t: torch_full_like(t, float("nan"))), "model.safetensors",
                    "tensor head.weight holds NaN"),
    "lstm_hidden_1e9": (edit_config(encoder_options={"lstm_hidden": 10**9}), "config.json", "lstm_hidden"),
    "lstm_hidden_20000": (edit_config(encoder_options={"lstm_hidden": 20000}), "config.json",
                          "does not belong to these weights"),
    "lstm_hidden_minus_5": (edit_config(encoder_options={"lstm_hidden": -5}), "config.json", "lstm_hidden"),
    "unknown_option_key": (edit_config(encoder_options={"bogus": 1}), "config.json", "bogus"),
    "format_version_string": (edit_config(format_version="2"), "config.json", "malformed format_version '2'"),
    "int64_weights": (edit_weights("head.weight", lambda t: t.long()), "model.safetensors",
                      "tensor head.weight holds int64 values"),
    "shape_mismatch": (edit_weights("head.bias", lambda t: t[:3].clone()), "model.safetensors",
                       "tensor head.bias has shape [3]"),
    "missing_tensor": (drop_tensor("crf.transitions"), "model.safetensors", "lacks tensor(s) crf.transitions"),
    "bioes_over_bio_labels": (edit_config(scheme="BIOES"), "config.json", "add E-LOC, S-LOC"),
}


def torch_full_like(tensor, value):
    import torch

    return torch.full_like(tensor, value)


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_defect4_a_broken_model_folder_is_one_line_naming_the_file_exit_1(bilstm_tagger, tmp_path, capsys, case):
    """Was exit 3 ("please report"), exit 2 ("see --help"), 2-3 lines of torch text, or exit 0 tagging all O."""
    break_it, named, says = BROKEN[case]
    model = copy_of(bilstm_tagger, tmp_path)
    break_it(model)
    text = tmp_path / "in.txt"
    text.write_text("john visited paris .\n")
    code, err = run_main(capsys, "predict", text, "--model", model)
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "internal error" not in err and "--help" not in err, err
    assert str(model / named) in lines[0] and says in lines[0], lines[0]


def test_defect4_utf16_without_a_byte_order_mark_is_a_data_error(bilstm_tagger, tmp_path, capsys):
    text = tmp_path / "in.txt"
    text.write_bytes("john visited paris .\n".encode("utf-16-le"))
    code, err = run_main(capsys, "predict", text, "--model", bilstm_tagger, "--encoding", "utf-16")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert f"{text}:1: expected utf-16 text starting with a byte order mark" in err and "utf-16-le" in err
    code, err = run_main(capsys, "predict", text, "--model", bilstm_tagger, "--encoding", "utf-16-le")
    assert code == 0, err


@pytest.mark.parametrize("argv", [["train", "sample", "--seed", "-1"], ["train", "sample", "--seed", "1" * 20],
                                  ["compare", "sample", "--seeds", "1,-1"]])
def test_defect4_a_seed_out_of_range_is_a_usage_error(tmp_path, capsys, argv):
    code, err = run_main(capsys, *argv, "--output", tmp_path / "run")
    assert code == 2, err
    assert "expected --seed" in err.replace("--seeds", "--seed") and "<= 4294967295" in err and "internal" not in err
    assert not (tmp_path / "run").exists()


def test_defect5_threads_has_an_upper_bound(capsys):
    from mcrf.cli.util import MAX_THREADS

    code, err = run_main(capsys, "--threads", "100000", "inspect", "sample")
    assert code == 2 and f"expected at most {MAX_THREADS} threads, got 100000" in err


# ---------------------------------------------------------------------------- defect 6: labels that fit the scheme
def test_defect6_maskedcrf_refuses_labels_whose_entities_cannot_close():
    from mcrf import MaskedCRF

    with pytest.raises(ValueError, match=r"cannot tag a whole LOC, PER entity under BIOES .*add E-LOC, S-LOC, E-PER, "
                                         r"S-PER"):
        MaskedCRF(5, labels=["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], scheme="BIOES")
    with pytest.raises(ValueError, match=r"add B-PER"):  # I-PER can never open an entity under BIO
        MaskedCRF(2, labels=["O", "I-PER"], scheme="BIO")
    with pytest.raises(ValueError, match=r"repeat \['B-PER'\]"):
        MaskedCRF(3, labels=["O", "B-PER", "B-PER"], scheme="BIO")
    for labels, scheme in ((["O", "S-PER"], "BIOES"), (["O", "B-PER", "E-PER"], "BIOES"), (["B", "M", "E", "S"], "BMES"),
                           (["O", "I-X", "E-X"], "IOE1"), (["O", "I-X"], "IOB1"), (["O", "B-X", "I-X"], "BIO")):
        MaskedCRF(len(labels), labels=labels, scheme=scheme)  # usable, if incomplete
