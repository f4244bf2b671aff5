"""Model resolution (issue 10 item 3): ``--model`` takes a model folder or a training output folder,
``$MCRF_MODEL`` is the default, and the error with neither names both ways; ``evaluate`` resolves
the same way. The CLI cases run as a user would: ``python -m mcrf`` subprocesses.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mcrf.errors import InputNotFound, ModelDirError
from mcrf.models.locate import ENV_VAR, locate_model, resolve_model

ROOT = Path(__file__).resolve().parents[1]
ENV = {**{k: v for k, v in os.environ.items() if k != ENV_VAR}, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT),
       "OMP_NUM_THREADS": "1"}


def _model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return folder


def _run_folder(root: Path, *parts: str) -> Path:
    """A training output folder holding the given sub-folders (models: config.json; last/: state only)."""
    root.mkdir(parents=True, exist_ok=True)
    for part in parts:
        if part == "last":
            (root / "last").mkdir()
            (root / "last" / "trainer_state.json").write_text("{}")
        else:
            _model(root / part)
    return root


def test_a_model_folder_is_used_as_is(tmp_path):
    model = _model(tmp_path / "m")
    assert locate_model(str(model), environ={}).path == model
    assert locate_model(model, environ={}).note is None


def test_a_run_folder_resolves_its_model_over_last_and_says_so_when_verbose(tmp_path, caplog):
    run = _run_folder(tmp_path / "runs" / "sample", "model", "best", "last")
    where = locate_model(str(run), environ={})
    assert where.path == run / "model" and where.finished and where.origin == "--model"
    assert where.note == (f"{run} is a training output folder: using {run / 'model'}, the final model of the run "
                          "(not last/, best/)")
    with caplog.at_level(logging.DEBUG, logger="mcrf"):
        assert resolve_model(str(run)) == run / "model"
        assert resolve_model(str(run), verbose=True) == run / "model"
    levels = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "mcrf.models.locate"]
    assert levels == [(logging.DEBUG, where.note), (logging.INFO, where.note)]  # INFO only with --verbose


def test_an_unfinished_run_uses_best_with_a_warning(tmp_path, caplog):
    run = _run_folder(tmp_path / "run", "best", "last")
    with caplog.at_level(logging.WARNING, logger="mcrf"):
        assert resolve_model(str(run)) == run / "best"
    assert "has no final model/ (the run did not finish)" in caplog.text and "--resume" in caplog.text
    swapped = _run_folder(tmp_path / "swap", "model.old", "last")  # killed between the two renames
    assert locate_model(str(swapped), environ={}).path == swapped / "model.old"


@pytest.mark.parametrize("layout, error, pattern", [
    ((), ModelDirError, r"expected a model folder \(with config.json\) or a training output folder \(with "
                        r"model/config.json\) at .*run \(--model\), got neither"),
    (("last",), ModelDirError, r"got only last/, the resume checkpoint .* --resume"),
])
def test_folders_without_a_model(tmp_path, layout, error, pattern):
    with pytest.raises(error, match=pattern):
        locate_model(str(_run_folder(tmp_path / "run", *layout)), environ={})


def test_missing_path_file_and_nothing_given(tmp_path):
    with pytest.raises(InputNotFound, match=r"expected a model folder at .*nope \(--model\), found nothing"):
        locate_model(str(tmp_path / "nope"), environ={})
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(ModelDirError, match="got a file"):
        locate_model(str(tmp_path / "f.txt"), environ={})
    with pytest.raises(ModelDirError) as caught:
        locate_model(None, environ={})
    assert "--model DIR" in str(caught.value) and f"{ENV_VAR}=DIR" in str(caught.value)
    assert locate_model("", environ={ENV_VAR: str(_model(tmp_path / "m"))}).origin == f"${ENV_VAR}"


def test_environment_variable_is_the_default_and_the_flag_wins(tmp_path):
    env_model, flag_model = _model(tmp_path / "env"), _model(tmp_path / "flag")
    assert locate_model(None, environ={ENV_VAR: str(env_model)}).path == env_model
    assert locate_model(str(flag_model), environ={ENV_VAR: str(env_model)}).path == flag_model
    with pytest.raises(InputNotFound, match=rf"\(\${ENV_VAR}\)"):
        locate_model(None, environ={ENV_VAR: str(tmp_path / "gone")})


# ---------------------------------------------------------------------------- as a user runs it


@pytest.fixture
def run_dir(sample_model, tmp_path):
    """What `mcrf train --output RUN` leaves: RUN/model, RUN/last and the run's files."""
    run = tmp_path / "runs" / "sample"
    shutil.copytree(sample_model, run / "model")
    (run / "last").mkdir()
    (run / "metrics.json").write_text("{}")
    return run


def _mcrf(*argv, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "mcrf", *map(str, argv)], capture_output=True, text=True,
                          env={**ENV, **(env or {})}, cwd=cwd or ROOT, timeout=300)


def test_predict_file_with_mcrf_model_set_and_with_a_run_dir(run_dir, tmp_path):
    text = tmp_path / "file.txt"
    text.write_text("Anna Weber flew to Berlin on Monday .\nJohn Smith met Maria Rossi in Paris .\n")
    by_env = _mcrf("predict", "file.txt", "--format", "jsonl", env={ENV_VAR: str(run_dir)}, cwd=tmp_path)
    assert by_env.returncode == 0, by_env.stderr
    by_flag = _mcrf("predict", text, "--model", run_dir, "--format", "jsonl", "--verbose")
    assert by_flag.returncode == 0, by_flag.stderr
    assert by_flag.stdout == by_env.stdout and len(by_env.stdout.splitlines()) == 2
    assert [json.loads(line)["tokens"][0] for line in by_env.stdout.splitlines()] == ["Anna", "John"]
    assert f"using {run_dir / 'model'}, the final model of the run (not last/)" in by_flag.stderr
    assert "final model" not in by_env.stderr  # said only with --verbose


def test_no_model_anywhere_names_both_ways(tmp_path):
    (tmp_path / "file.txt").write_text("hello\n")
    done = _mcrf("predict", "file.txt", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "--model DIR" in done.stderr and f"{ENV_VAR}=DIR" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_evaluate_resolves_the_same_way(run_dir):
    by_dir = _mcrf("evaluate", run_dir, "sample", "--split", "dev", "--json")
    assert by_dir.returncode == 0, by_dir.stderr
    by_env = _mcrf("evaluate", "sample", "--split", "dev", "--json", env={ENV_VAR: str(run_dir)})
    assert by_env.returncode == 0, by_env.stderr
    first, second = json.loads(by_dir.stdout), json.loads(by_env.stdout)
    assert first["model"] == second["model"] == str(run_dir / "model") and first["f1"] == second["f1"]
