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
    Tagger.build(TaggerConfig(encoder=str(bert), labels=tm.TOY_LABELS, max_length=16, stride=4)).save_pretrained(
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
