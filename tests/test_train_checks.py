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
from mcrf.training.loop import _warn_about_labels

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
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
def test_a_diverging_run_stops_with_one_clear_line(tmp_path):
    """A learning rate far too high: "training diverged at step N (...); lower --lr / --head-lr", exit 1."""
    done = mcrf("train", "sample", "--output", tmp_path / "run", "--max-steps", "4", "--eval-every", "2",
                "--lr", "1e30", "--head-lr", "1e30", *TINY)
    assert done.returncode == 1, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("mcrf train: error: training diverged at step 2 (non-finite ")
    assert line.endswith("lower --lr / --head-lr and start over with --overwrite") and "Traceback" not in done.stderr


def test_non_finite_crf_transitions_stop_training_naming_them(tmp_path, monkeypatch):
    """The check at evaluation time names the CRF parameter that went non-finite."""
    import mcrf.training.loop as loop

    built = loop.build_optimizer

    def poisoned(tagger, **kwargs):
        optimizer = built(tagger, **kwargs)

        def poison(*_):
            with torch.no_grad():
                tagger.crf.transitions[0, 0] = float("nan")

        optimizer.register_step_post_hook(poison)
        return optimizer

    monkeypatch.setattr(loop, "build_optimizer", poisoned)
    config = TrainConfig.for_dataset("sample", output_dir=str(tmp_path / "run"), max_steps=3, eval_every=1,
                                     max_train_sentences=16, max_eval_sentences=8, batch_size=8)
    with pytest.raises(TrainingDiverged, match=r"training diverged at step 1 \(non-finite CRF transitions\); "
                                               r"lower --lr / --head-lr"):
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


@pytest.mark.skipif(not (SHARED / "atis").is_dir(), reason="needs ../shared/data/atis")
def test_atis_slot_types_missing_from_train_are_named(caplog):
    """ATIS has slot types that occur in test but never in train (SlotGated-SLU split)."""
    from mcrf.data import load_corpus

    atis = load_corpus("atis", data_dir=str(SHARED / "atis"))
    with caplog.at_level(logging.WARNING, logger="mcrf.training.loop"):
        _warn_about_labels(atis.splits["train"], {"dev": atis.splits["dev"], "test": atis.splits["test"]}, "atis")
    test_lines = [r.getMessage() for r in caplog.records if " in test but never in the training" in r.getMessage()]
    assert test_lines == ["entity types booking_class, compartment, flight, stoploc.airport_code of atis occur in test "
                          "but never in the training sentences: the model cannot learn them and they count as missed"]
