"""Training: config validation, optimizer groups (LLRD), schedule, atomic checkpoints, and real runs.

End-to-end runs use the BiLSTM encoder or a tiny BertConfig encoder (tests/tiny_models.py) on a
tiny corpus written by the test, so nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from mcrf.training import TrainConfig
from mcrf.training.checkpoint import find_checkpoint, replace_dir
from mcrf.training.optim import build_optimizer, encoder_depth, linear_schedule, param_groups
from mcrf.training.report import append_log, plot_curves, read_log, truncate_log

# ---------------------------------------------------------------------------- config


def test_defaults_and_sample_preset():
    config = TrainConfig()
    assert config.encoder == "bert-base-cased" and config.decoder == "mcrf" and config.eval_every == "epoch"
    sample = TrainConfig.for_dataset("sample")
    assert sample.encoder == "bilstm" and sample.dataset == "sample"
    assert TrainConfig.for_dataset("sample", epochs=2).epochs == 2
    assert TrainConfig.for_dataset("conll2003").encoder == "bert-base-cased"
    assert TrainConfig.from_dict(sample.to_dict()) == sample
    assert "decoder" in sample.header() and "bilstm" in sample.header()


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("decoder", "viterbi", "decoder"),
        ("postprocess", "keep", "postprocess"),
        ("mixed_precision", "fp8", "mixed_precision"),
        ("epochs", 0, "epochs"),
        ("batch_size", 2.5, "batch_size"),
        ("max_steps", 0, "max_steps"),
        ("lr", -1.0, "lr"),
        ("layer_decay", 1.5, "layer_decay"),
        ("warmup_ratio", 1.0, "warmup_ratio"),
        ("eval_every", "sometimes", "eval_every"),
        ("eval_every", 0, "eval_every"),
        ("stride", 600, "stride"),
        ("patience", 0, "patience"),
    ],
)
def test_bad_settings_are_clear_errors(field, value, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{field: value})


def test_eval_every_accepts_step_counts_as_text_and_unknown_fields_fail():
    assert TrainConfig(eval_every="50").eval_every == 50
    with pytest.raises(TypeError, match="learning_rate"):
        TrainConfig.for_dataset("sample", learning_rate=1.0)
    with pytest.raises(TypeError, match="bogus"):
        TrainConfig.from_dict({"bogus": 1})


# ---------------------------------------------------------------------------- optimizer


class _FakeBertTagger(nn.Module):
    """Parameter names shaped like a Tagger over a 3-layer HF BERT."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.embeddings = nn.Module()
        self.encoder.embeddings.word_embeddings = nn.Embedding(10, 4)
        self.encoder.embeddings.LayerNorm = nn.LayerNorm(4)
        self.encoder.encoder = nn.Module()
        self.encoder.encoder.layer = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))
        self.encoder.final_norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 3)
        self.crf = nn.Module()
        self.crf.transitions = nn.Parameter(torch.zeros(3, 3))


def _lr_of(groups, param):
    return next(g for g in groups if any(p is param for p in g["params"]))


def test_llrd_groups_and_no_weight_decay_rules():
    model = _FakeBertTagger()
    groups = param_groups(model, lr=1.0, head_lr=10.0, layer_decay=0.5, weight_decay=0.1)
    enc = model.encoder
    cases = [
        (enc.embeddings.word_embeddings.weight, 0.5 ** 3, 0.1),
        (enc.embeddings.LayerNorm.weight, 0.5 ** 3, 0.0),
        (enc.encoder.layer[0].weight, 0.5 ** 2, 0.1),
        (enc.encoder.layer[0].bias, 0.5 ** 2, 0.0),
        (enc.encoder.layer[1].weight, 0.5, 0.1),
        (enc.encoder.layer[2].weight, 1.0, 0.1),
        (enc.final_norm.weight, 1.0, 0.0),
        (model.head.weight, 10.0, 0.1),
        (model.head.bias, 10.0, 0.0),
        (model.crf.transitions, 10.0, 0.0),
    ]
    for param, lr, decay in cases:
        group = _lr_of(groups, param)
        assert group["lr"] == pytest.approx(lr) and group["weight_decay"] == decay, group["name"]
    n_params = sum(len(g["params"]) for g in groups)
    assert n_params == len(list(model.parameters()))
    assert encoder_depth("encoder.transformer.layer.4.ffn.lin1.weight", 6) == 5  # DistilBERT naming
    assert encoder_depth("encoder.embeddings.word_embeddings.weight", 6) == 0


def test_bilstm_like_encoder_without_layers_trains_at_lr():
    model = nn.Module()
    model.encoder = nn.Module()
    model.encoder.embeddings = nn.Embedding(5, 3)
    model.encoder.lstm = nn.LSTM(3, 3)
    model.head = nn.Linear(3, 2)
    groups = param_groups(model, lr=0.01, head_lr=0.1, layer_decay=0.5)
    assert {g["lr"] for g in groups if g["name"].startswith("encoder")} == {0.01}
    frozen = nn.Linear(2, 2)
    frozen.weight.requires_grad_(False)
    frozen.bias.requires_grad_(False)
    with pytest.raises(ValueError, match="trainable"):
        build_optimizer(frozen, lr=1.0, head_lr=1.0)


def test_linear_warmup_then_decay_to_zero():
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([{"params": [param], "lr": 2.0}])
    scheduler = linear_schedule(optimizer, total_steps=10, warmup_ratio=0.2)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] < lrs[1] < lrs[2] == pytest.approx(2.0)
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:]))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0)
    # the schedule is not stored in the state dict, so a resumed run may extend total_steps
    assert scheduler.state_dict()["lr_lambdas"] == [None]


# ---------------------------------------------------------------------------- checkpoint and report files


def test_replace_dir_swaps_atomically_and_find_checkpoint_falls_back(tmp_path):
    for version in ("1", "2"):
        tmp = tmp_path / "last.tmp"
        tmp.mkdir()
        (tmp / "trainer_state.json").write_text(version)
        replace_dir(tmp, tmp_path / "last")
    assert (tmp_path / "last" / "trainer_state.json").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    # a kill between the two renames leaves only last.old: it is still found
    (tmp_path / "last").rename(tmp_path / "last.old")
    assert find_checkpoint(tmp_path, "last") == tmp_path / "last.old"
    assert find_checkpoint(tmp_path, "best") is None


def test_log_truncation_and_curves(tmp_path):
    log = tmp_path / "train_log.jsonl"
    for step in (1, 2, 3):
        append_log(log, {"event": "epoch", "step": step, "epoch": step, "train_loss": 1.0 / step})
        append_log(log, {"event": "eval", "step": step, "epoch": step, "dev_f1": 0.2 * step})
    with open(log, "a") as handle:
        handle.write('{"event": "ev')  # a kill mid-write
    assert len(read_log(log)) == 6
    kept = truncate_log(log, 2)
    assert [r["step"] for r in kept] == [1, 1, 2, 2] and read_log(log) == kept
    plot_curves(kept, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    log.write_text('{"a": 1}\nnot json\n{"b": 2}\n')
    with pytest.raises(ValueError, match="train_log.jsonl:2"):
        read_log(log)
