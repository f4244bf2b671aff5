"""results.md says what the numbers mean (issue 17): a verdict per claim, cautions when the comparison
cannot settle the question, speeds marked noisy; ``--summarize`` re-renders every results.md from its
results.json; the recorded command line keeps a home path as ``~``. Synthetic ``results.json`` dicts:
no training here."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from mcrf.cli.app import main
from mcrf.compare.report import render_markdown, render_summary_lines
from mcrf.compare.verdict import cautions, verdicts


def _stat(mean, per_seed=None):
    return {"mean": mean, "std": None if per_seed is None or len(per_seed) < 2 else 0.1,
            "per_seed": per_seed or [mean]}


def _results(deltas, ci, p, f1=(92.0, 91.0), seeds=(1, 2, 3)):
    variants = {}
    for name, title, objective, value in (("crf-retain", "CRF + Retain", "crf", f1[1]),
                                          ("mcrf", "MCRF-training", "mcrf", f1[0])):
        variants[name] = {"title": title, "objective": objective, "dev_f1": _stat(value), "test_f1": _stat(value),
                          "dev_illegal_path_rate": _stat(0.0), "test_illegal_path_rate": _stat(0.0),
                          "train_sentences_per_second": _stat(100.0), "predict_sentences_per_second": _stat(500.0)}
    pair = {"a": "mcrf", "b": "crf-retain", "claim": "MCRF-training − CRF + Retain", "per_seed_delta": list(deltas),
            "mean_delta": sum(deltas) / len(deltas), "std_delta": None, "p_value": p, "ci95": list(ci),
            "resamples": 1000, "method": "m"}
    return {"dataset": "toy", "encoder": "bilstm", "seeds": list(seeds), "variants": variants, "pairs": [pair],
            "sentences": {"train": 100, "dev": 50, "test": 50}, "train_config": {"lr": 0.003},
            "cells": {}, "command": "mcrf compare toy --seeds 1,2,3", "versions": {"mcrf": "0"}}


def test_a_clear_gain_is_settled_without_cautions():
    results = _results([0.3, 0.4, 0.35], (0.1, 0.6), 0.002)
    assert verdicts(results) == ["MCRF-training − CRF + Retain: +0.35 F1, settled: MCRF-training is better on this "
                                 "test set (95% CI [+0.10, +0.60], p 0.0020)."]
    assert cautions(results) == []
    md = render_markdown(results)
    assert "## Verdict\n\n- MCRF-training − CRF + Retain: +0.35 F1, settled" in md and "Cautions:" not in md


def test_a_ci_through_zero_few_seeds_and_the_ceiling_are_said():
    """The sample at ~99 F1 with one seed and a CI including 0 read like any other result."""
    results = _results([0.2], (-0.4, 0.8), 0.41, f1=(99.1, 98.9), seeds=(1,))
    assert verdicts(results) == ["MCRF-training − CRF + Retain: +0.20 F1, not settled: the CI includes 0 (95% CI "
                                 "[-0.40, +0.80], p 0.4100)."]
    found = cautions(results)
    assert found[0].startswith("Only 1 seed: how much ΔF1 varies from seed to seed is not measured")
    assert found[1].startswith("Test F1 is near the ceiling (MCRF-training 99.10, CRF + Retain 98.90)")
    md = render_markdown(results)
    assert "Cautions:\n\n- Only 1 seed" in md
    assert "train sent/s* | predict sent/s* |" in md and "* Speeds are one timing per cell" in md
    lines = render_summary_lines(results, Path("out"))
    assert lines[0].startswith("results: out/results.md") and lines[1] == verdicts(results)[0]
    assert lines[2:] == [f"caution: {line}" for line in found]


def test_seeds_disagreeing_in_sign_are_a_caution():
    results = _results([0.5, -0.3, 0.4], (-0.1, 0.5), 0.2)
    assert cautions(results) == ["MCRF-training − CRF + Retain: the seeds disagree in sign (+0.50, -0.30, +0.40)."]


def test_summarize_rerenders_each_results_md_from_its_json(tmp_path, capsys):
    folder = tmp_path / "toy-bilstm"
    folder.mkdir()
    results = _results([0.3, 0.4, 0.35], (0.1, 0.6), 0.002)
    (folder / "results.json").write_text(json.dumps(results))
    (folder / "results.md").write_text("# written by an older mcrf\n")
    assert main(["compare", "--summarize", str(tmp_path)]) == 0
    assert (folder / "results.md").read_text() == render_markdown(copy.deepcopy(results))
    assert (tmp_path / "README.md").is_file()


def test_the_command_line_keeps_a_home_path_as_typed(monkeypatch, tmp_path):
    """``--data-dir ~/corpora/atis`` reached mcrf as /home/<user>/corpora/atis and was recorded so."""
    import argparse

    from mcrf.cli.compare import _command

    monkeypatch.setenv("HOME", str(tmp_path))
    args = argparse.Namespace(dataset="atis", data_dir=str(tmp_path / "corpora" / "atis"), encoder="/opt/m",
                              output_dir="runs/x y")
    assert _command(args, ["data_dir", "encoder", "output_dir"]) == (
        "mcrf compare atis --data-dir ~/corpora/atis --encoder /opt/m --output 'runs/x y'")
