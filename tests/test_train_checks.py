"""What training checks as it goes (issue 8): divergence once per evaluation (and on a non-finite
loss), and warnings about labels training cannot learn (case 8: all-O data; types only in dev/test).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mcrf.errors import TrainingDiverged
from mcrf.training import TrainConfig, train
from mcrf.training.preflight import warn_about_labels

from extras import data_dir

ROOT = Path(__file__).resolve().parents[1]
SHARED = data_dir()  # $MCRF_DATA_DIR, else ../shared/data
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
TINY = ["--max-train-sentences", "32", "--max-eval-sentences", "8", "--batch-size", "8"]


def mcrf(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mcrf", *map(str, argv)], capture_output=True, text=True, env=ENV,
                          cwd=ROOT, timeout=300)


def corpus(folder: Path, splits: dict) -> Path:
    folder.mkdir()
    for split, sentences in splits.items():
        text = "\n\n".join("\n".join(f"{w} {t}" for w, t in zip(s.split(), tags.split())) for s, tags in sentences)
        (folder / f"{split}.txt").write_text(text + "\n\n", encoding="utf-8")
    return folder


# ---------------------------------------------------------------------------- divergence
POISON = """
import torch
import mcrf.training.build as build
built = build.build_optimizer

def poisoned(tagger, **kwargs):  # each step leaves a NaN in the CRF transitions, as a diverged step does
    optimizer = built(tagger, **kwargs)

    def poison(*_):
        with torch.no_grad():
            tagger.crf.transitions[0, 0] = float("nan")

    optimizer.register_step_post_hook(poison)
    return optimizer

build.build_optimizer = poisoned
"""


def test_a_diverging_run_stops_with_one_clear_line(tmp_path):
    """Non-finite CRF transitions stop ``mcrf train`` at the next evaluation with one line naming them and
    the fix, exit 1 (a NaN used to reach Viterbi and come out as "no legal tag path")."""
    code = f"import sys\n{POISON}\nfrom mcrf.cli.app import main\nsys.exit(main(sys.argv[1:]))\n"
    done = subprocess.run([sys.executable, "-c", code, "train", "sample", "--output", str(tmp_path / "run"),
                           "--max-steps", "4", "--eval-every", "1", *TINY], capture_output=True, text=True, env=ENV,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "mcrf train: error: training diverged at step 1 (non-finite CRF transitions); lower --lr / --head-lr and "
        "start over with --overwrite")
    assert "Traceback" not in done.stderr


def test_non_finite_scores_between_evaluations_are_divergence_too(tmp_path, monkeypatch):
    """Between evaluations, the CRF refusing NaN parameters or emissions (or a NaN loss) is divergence."""
    import mcrf.training.build as build

    monkeypatch.setattr(build, "build_optimizer", build.build_optimizer)  # restored after the test
    exec(POISON, {})  # noqa: S102 - the test's own code: replaces build.build_optimizer
    config = TrainConfig.for_dataset("sample", output_dir=str(tmp_path / "run"), max_steps=3, eval_every=100,
                                     max_train_sentences=16, max_eval_sentences=8, batch_size=8)
    with pytest.raises(TrainingDiverged, match=r"training diverged at step 2 \(non-finite CRF transitions\)"):
        train(config)


# ---------------------------------------------------------------------------- label warnings
def test_case8_all_o_training_data_warns(tmp_path):
    """Case 8: all-O training data trained a 1-label model to F1 0.00 without a word."""
    data = corpus(tmp_path / "data", {"train": [("John smiles", "O O"), ("Mary runs", "O O")],
                                      "dev": [("Anna sings", "O O")]})
    done = mcrf("train", data, "--encoder", "bilstm", "--source-scheme", "BIO", "--output", tmp_path / "run",
                "--max-steps", "1")
    assert done.returncode == 0, done.stderr
    assert f"the training data of {data} has no entity tags (every tag is O)" in done.stderr


def test_entity_types_only_in_dev_or_test_warn(tmp_path):
    data = corpus(tmp_path / "data", {
        "train": [("John smiles", "B-PER O"), ("Mary runs", "B-PER O")],
        "dev": [("Anna sings in Paris", "B-PER O O B-LOC")],
        "test": [("Anna sings in Rome for ACME", "B-PER O O B-LOC O B-ORG")]})
    done = mcrf("train", data, "--encoder", "bilstm", "--output", tmp_path / "run", "--max-steps", "1")
    assert done.returncode == 0, done.stderr
    assert f"entity type LOC of {data} occurs in dev but never in the training sentences" in done.stderr
    assert f"entity types LOC, ORG of {data} occur in test but never in the training sentences" in done.stderr


@pytest.mark.skipif(not (SHARED / "atis").is_dir(), reason=f"needs {SHARED / 'atis'} ($MCRF_DATA_DIR or ../shared/data)")
def test_atis_slot_types_missing_from_train_are_named(caplog):
    """ATIS has slot types that occur in test but never in train (SlotGated-SLU split)."""
    from mcrf.data import load_corpus

    atis = load_corpus("atis", data_dir=str(SHARED / "atis"))
    with caplog.at_level(logging.WARNING, logger="mcrf.training.preflight"):
        warn_about_labels(atis.splits["train"], {"dev": atis.splits["dev"], "test": atis.splits["test"]}, "atis")
    test_lines = [r.getMessage() for r in caplog.records if " in test but never in the training" in r.getMessage()]
    assert test_lines == ["entity types booking_class, compartment, flight, stoploc.airport_code of atis occur in test "
                          "but never in the training sentences: the model cannot learn them and they count as missed"]
