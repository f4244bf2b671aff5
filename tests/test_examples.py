"""The examples run as documented."""

from __future__ import annotations

import runpy
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_custom_tagger_example_trains_and_decodes_legal_paths(capsys):
    runpy.run_path(str(EXAMPLES / "custom_tagger.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "4/4 training sentences tagged exactly" in out


def test_hf_trainer_example_runs_the_run_ner_flow(tmp_path, monkeypatch, capsys):
    import json
    import sys

    from tiny_models import make_bert_dir

    bert = make_bert_dir(tmp_path / "bert")
    output = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", [
        "hf_trainer_ner.py", "--model_name_or_path", str(bert), "--dataset_name", "sample", "--max_train_samples",
        "64", "--output_dir", str(output), "--num_train_epochs", "1", "--per_device_train_batch_size", "32",
        "--head_lr", "1e-3", "--layer_decay", "0.9", "--threads", "1", "--report_to", "none", "--save_strategy",
        "no", "--use_cpu", "true", "--disable_tqdm", "true", "--dataloader_pin_memory", "false"])
    runpy.run_path(str(EXAMPLES / "hf_trainer_ner.py"), run_name="__main__")
    results = json.loads((output / "results.json").read_text())
    assert {"dev_f1", "dev_loss"} <= set(results["dev"]) and "test_f1" in results["test"]
    assert (output / "model.safetensors").is_file() and (output / "tokenizer.json").is_file()
