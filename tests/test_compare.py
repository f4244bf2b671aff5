"""``mcrf compare``: the whole command on the sample corpus with a tiny budget (files, table shapes,
resume after a cell really interrupted mid-training, results.md == results.json), the paired
statistics, and the cross-corpus summary. The numbers themselves are not checked."""

from __future__ import annotations

import io
import json
import re
from contextlib import redirect_stderr, redirect_stdout

import pytest
import torch

from mcrf.cli.app import main
from mcrf.compare import CompareConfig, parse_variants
from mcrf.compare.report import shown
from mcrf.compare.stats import f1_points, mean_std, paired_test, sentence_counts
from mcrf.errors import ConfigError
from mcrf.evaluation import score_predictions
from mcrf.training import build

from tiny_models import one_torch_thread  # noqa: F401

# 150 sentences x 3 epochs at a high learning rate: seconds per cell, yet F1 well above 0
BUDGET = ["--epochs", "3", "--max-train-sentences", "150", "--max-eval-sentences", "60", "--lr", "0.01",
          "--head-lr", "0.01", "--resamples", "300"]
VARIANTS = ["--variants", "crf-retain,mcrf", "--seeds", "1"]


def run(*argv):
    """``main(argv)`` -> (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


class Interrupted(KeyboardInterrupt):
    """Injected into the mcrf cell's training right after its first checkpoint."""


@pytest.fixture(scope="module")
def compared(tmp_path_factory, one_torch_thread):  # noqa: F811
    """A comparison interrupted inside its second cell, then re-run: (folder, first run, second run)."""
    folder = tmp_path_factory.mktemp("compare") / "sample-bilstm"
    argv = ["compare", "sample", *VARIANTS, "--output", folder, *BUDGET]
    original = build.Run.save_last

    def save_then_die(self):
        original(self)
        if self.config.decoder == "mcrf":
            raise Interrupted("injected: killed after the first checkpoint of the mcrf cell")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build.Run, "save_last", save_then_die)
        first = run(*argv)
    crf_log = (folder / "cells" / "crf-seed1" / "train_log.jsonl").read_text()
    interrupted = {"mcrf_cell_json": (folder / "cells" / "mcrf-seed1" / "cell.json").exists(),
                   "mcrf_last": (folder / "cells" / "mcrf-seed1" / "last").is_dir(),
                   "results": (folder / "results.md").exists(), "crf_log": crf_log}
    second = run(*argv, "--debug")
    return folder, first, interrupted, second


def test_an_interrupted_cell_resumes_and_finished_cells_are_kept(compared):
    folder, first, interrupted, second = compared
    assert first[0] == 130, first[2][-2000:]
    assert (folder / "cells" / "crf-seed1" / "cell.json").is_file()  # the first cell had finished
    assert interrupted["mcrf_last"] and not interrupted["mcrf_cell_json"] and not interrupted["results"]
    assert second[0] == 0, second[2][-3000:]
    assert "cell crf-seed1: finished before, kept" in second[2]
    assert "resuming the interrupted training" in second[2]
    # the finished cell was not retrained; the interrupted one went on from its checkpoint
    assert (folder / "cells" / "crf-seed1" / "train_log.jsonl").read_text() == interrupted["crf_log"]
    start = json.loads((folder / "cells" / "mcrf-seed1" / "compare_start.json").read_text())["start_step"]
    state = json.loads((folder / "cells" / "mcrf-seed1" / "metrics.json").read_text())
    assert 0 < start < state["global_step"]
    assert not (folder / "cells" / "mcrf-seed1" / "last").exists()  # finished cells drop their resume state


def test_files_command_line_and_versions(compared):
    folder, _, _, second = compared
    for name in ("results.md", "results.json", "results.png", "compare.json"):
        assert (folder / name).is_file(), name
    assert (folder / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((folder / "results.json").read_text())
    assert results["command"].startswith("mcrf compare sample --seeds 1 --variants crf-retain,mcrf")
    assert "--epochs 3" in results["command"] and "--lr 0.01" in results["command"]
    assert {"python", "mcrf", "torch", "seqeval"} <= set(results["versions"])
    md = (folder / "results.md").read_text()
    assert results["command"] in md and f"torch {results['versions']['torch']}" in md
    assert second[1].splitlines()[0] == f"results: {folder / 'results.md'} (tables, command line, versions), " \
                                         "results.json, results.png"  # then the verdicts, not the whole table


def _table(md: str, header: str):
    """Rows (lists of cells) of the markdown table whose header row starts with ``header``."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return lines[start], rows


def _numbers(text: str):
    return [float(x) for x in re.findall(r"[-+]?\d+\.\d+", text)]


def test_table_shape_and_every_number_equals_the_json(compared):
    folder = compared[0]
    md = (folder / "results.md").read_text()
    results = json.loads((folder / "results.json").read_text())
    header, rows = _table(md, "| variant |")
    assert len(header.strip("|").split("|")) == 8 and len(rows) == 2
    columns = [("dev_f1", 2), ("test_f1", 2), ("dev_illegal_path_rate", 2), ("test_illegal_path_rate", 2),
               ("train_sentences_per_second", 1), ("predict_sentences_per_second", 1)]
    for row, name in zip(rows, ["crf-retain", "mcrf"]):
        assert f"`{name}`" in row[0] and len(row) == 8
        for cell, (key, digits) in zip(row[2:], columns):
            stat = results["variants"][name][key]
            assert stat["std"] is None  # one seed: no spread is shown or stored
            assert cell == shown(stat["mean"], digits), (name, key)
            assert _numbers(cell) == [round(stat["mean"], digits)]
    _, pairs = _table(md, "| claim |")
    assert len(pairs) == len(results["pairs"]) == 1
    pair = results["pairs"][0]
    assert (pair["a"], pair["b"]) == ("mcrf", "crf-retain")
    expected = [*(round(d, 2) for d in pair["per_seed_delta"]), round(pair["mean_delta"], 2),
                *(round(x, 2) for x in pair["ci95"]), round(pair["p_value"], 4)]
    assert _numbers(" ".join(pairs[0][1:])) == expected
    assert results["variants"]["mcrf"]["test_f1"]["mean"] > 0  # the budget learns something


def test_paired_counts_agree_with_the_reported_f1(compared):
    folder = compared[0]
    for cell in ("crf-seed1", "mcrf-seed1"):
        record = json.loads((folder / "cells" / cell / "cell.json").read_text())
        for variant in record["variants"].values():
            assert "counts" not in variant["dev"]  # only the test split is resampled
            counts = torch.tensor(variant["test"]["counts"], dtype=torch.float64)
            assert counts.shape == (60, 3)
            assert float(f1_points(*counts.sum(dim=0))) == pytest.approx(100 * variant["test"]["result"]["f1"],
                                                                         abs=1e-9)


def test_changed_settings_are_refused_and_name_the_field(compared):
    folder = compared[0]
    code, _, err = run("compare", "sample", *VARIANTS, "--output", folder, *BUDGET[:-2], "--epochs", "4")
    assert code != 0 and "epochs: 3 (saved) != 4 (now)" in err
    assert (folder / "results.json").is_file()


def test_settings_of_another_mcrf_version_are_named_not_refused(compared):
    folder = compared[0]
    saved = (folder / "compare.json").read_text()
    settings = json.loads(saved)
    assert settings["format"] == 3
    del settings["format"]  # as written before the layered TrainConfig
    del settings["train"]["epochs"]  # a field this mcrf has and the writer did not
    settings["train"]["retired_knob"] = 7  # and one the writer had and this mcrf does not
    settings["train"]["lr"] = 0.5  # and one it resolved differently
    (folder / "compare.json").write_text(json.dumps(settings))
    try:
        code, _, err = run("compare", "sample", *VARIANTS, "--output", folder, *BUDGET)
    finally:
        (folder / "compare.json").write_text(saved)
    assert code == 0, err[-2000:]
    assert "records settings differently (format 1, now 3)" in err
    assert "epochs: '<absent>' (saved) != 3 (now)" in err and "retired_knob: 7 (saved)" in err
    assert "lr: 0.5 (saved) != 0.01 (now)" in err


def test_a_busy_or_foreign_folder_is_refused(tmp_path):
    from mcrf.io import runfolder

    with runfolder.hold(tmp_path / "busy"):  # this process holds it: a second comparison is refused
        code, _, err = run("compare", "sample", *VARIANTS, "--output", tmp_path / "busy", *BUDGET)
    assert code != 0 and "in use by another mcrf run" in err and "PID" in err
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "results.md").write_text("someone's notes")
    code, _, err = run("compare", "sample", *VARIANTS, "--output", tmp_path / "foreign", *BUDGET)
    assert code != 0 and "results.md" in err and "another --output" in err
    assert (tmp_path / "foreign" / "results.md").read_text() == "someone's notes"
    assert not (tmp_path / "foreign" / "compare.json").exists()


def test_summarize_writes_the_cross_corpus_table_and_figure(compared):
    root = compared[0].parent
    (root / "atis-bilstm" / "cells").mkdir(parents=True)  # a comparison still running: listed, not tabled
    (root / "atis-bilstm" / "compare.json").write_text("{}")
    code, out, err = run("compare", "--summarize", root)
    assert code == 0, err
    readme = (root / "README.md").read_text()
    _, rows = _table(readme, "| comparison |")
    assert len(rows) == 1 and rows[0][0] == "[sample-bilstm](sample-bilstm/results.md)"
    train = json.loads((root / "sample-bilstm" / "results.json").read_text())["sentences"]["train"]
    assert rows[0][2] == f"{train:,}"  # the train sentences column: a subset shows
    assert "`atis-bilstm`: running or interrupted, 0 cell(s) finished" in readme
    assert (root / "summary.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_usage_errors(tmp_path):
    code, _, err = run("compare")
    assert code == 2 and "expected DATASET" in err
    code, _, err = run("compare", "sample", "--variants", "crf,mcrf")
    assert code != 0 and "crf" in err and "crf-retain" in err
    code, _, err = run("compare", "--summarize", tmp_path)
    assert code != 0 and "found none" in err
    code, out, _ = run("compare", "--help")
    assert code == 0 and "--epochs" in out and "--encoder" in out and "--seeds" in out
    assert "--decoder" not in out and "--postprocess" not in out and "--resume" not in out


def test_config_checks():
    assert parse_variants("mcrf, crf-retain,mcrf") == ("mcrf", "crf-retain")
    with pytest.raises(ConfigError, match="expected variants"):
        parse_variants("")
    with pytest.raises(ConfigError, match="per cell"):
        CompareConfig(train={"decoder": "crf"})
    with pytest.raises(ConfigError, match="distinct integer seeds"):
        CompareConfig(seeds=(1, 1))
    with pytest.raises(ConfigError, match="learning_rate"):
        CompareConfig(train={"learning_rate": 1.0}).train_config()


# ---------------------------------------------------------------------------- statistics
def test_mean_std():
    assert mean_std([1.0]) == (1.0, 0.0)
    mean, std = mean_std([1.0, 2.0, 3.0])
    assert mean == 2.0 and std == pytest.approx(1.0)


def test_sentence_counts_sum_to_seqeval_f1():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "O"], ["B-ORG", "O", "B-PER"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-LOC", "O"], ["B-ORG", "O", "O"]]
    counts = sentence_counts(gold, pred, "BIO")
    assert counts == [[1, 2, 2], [0, 1, 0], [1, 1, 2]]
    total = torch.tensor(counts, dtype=torch.float64).sum(dim=0)
    assert float(f1_points(*total)) == pytest.approx(100 * score_predictions(gold, pred, "BIO").f1)


def _system(correct, gold_spans=2):
    """Per-sentence counts of a system that gets ``correct[i]`` of ``gold_spans`` spans right."""
    return [[c, gold_spans, gold_spans] for c in correct]


def test_paired_test_identical_systems_and_a_clear_difference():
    same = [_system([1, 2, 0, 2] * 10)] * 2
    result = paired_test(same, same, resamples=200)
    assert result["delta"] == 0 and result["p_value"] == 1.0 and result["ci_low"] == result["ci_high"] == 0
    better, worse = [_system([2] * 40)] * 2, [_system([0, 1] * 20)] * 2
    result = paired_test(better, worse, resamples=500, seed=1)
    assert result["delta"] == pytest.approx(100 - 25)
    assert result["p_value"] == pytest.approx(1 / 501) and 60 < result["ci_low"] <= result["ci_high"] <= 90
    assert paired_test(better, worse, resamples=500, seed=1) == result  # seeded: reruns agree
    with pytest.raises(ValueError, match="same sentences"):
        paired_test(better, [_system([2] * 39)] * 2, resamples=200)


def test_the_training_fields_each_cell_sets_are_one_list():
    """Issue 18: the CLI, CompareConfig and the settings check kept three copies of this list, and they
    differed (CompareConfig accepted `overwrite`, which every cell sets itself)."""
    from mcrf.cli.compare import _train_flags
    from mcrf.compare.cells import SET_PER_CELL
    from mcrf.compare.runner import PER_CELL_FIELDS

    assert not set(_train_flags()) & set(SET_PER_CELL) and set(SET_PER_CELL) <= PER_CELL_FIELDS
    for name in SET_PER_CELL:
        with pytest.raises(ConfigError, match=f"compare sets \\['{name}'\\] itself"):
            CompareConfig(train={name: True})


@pytest.mark.parametrize("value", [99, 100.0, True, "1000"])
def test_resamples_take_the_shared_integer_check(value):
    with pytest.raises(ConfigError, match="expected resamples to be an integer >= 100"):
        CompareConfig(resamples=value)
    assert CompareConfig(resamples=100).resamples == 100


def test_compare_takes_the_encoder_window_flags(monkeypatch):
    seen = {}

    def fake_compare(config, command=None):
        seen["config"], seen["command"] = config, command
        raise ConfigError("stop here")

    monkeypatch.setattr("mcrf.compare.compare", fake_compare)
    code, _, err = run("compare", "sample", "--encoder", "some/bert", "--max-length", "64", "--output", "x")
    assert code == 2 and "stop here" in err
    assert seen["config"].train == {"encoder": "some/bert", "encoder_options": {"max_length": 64}}
    assert "--max-length 64" in seen["command"]
