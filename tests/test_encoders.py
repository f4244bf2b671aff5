"""The Encoder interface: every kind behind one registry, the window and defaults it decides, a new kind in one class."""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from mcrf.errors import ConfigError, ModelDirError
from mcrf.fields import integer, option
from mcrf.models import Tagger, TaggerConfig
from mcrf.models import encoders as registry
from mcrf.models.encoders import Encoder, encoder_class, register_encoder, unregister_encoder
from mcrf.models.encoders.bilstm import BiLSTMEncoder
from mcrf.models.encoders.frozen import FrozenStackEncoder
from mcrf.models.encoders.hf import HFEncoder
from mcrf.training import TrainConfig, train
from mcrf.training.config import ENCODER_TUNED, PRESETS
from mcrf.training.optim import OptimConfig, build_optimizer

import tiny_models as tm
from extras import data_dir
from tiny_models import one_torch_thread  # noqa: F401  (autouse fixture)

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"bilstm": dict(word_dim=16, char_dim=8, char_filters=8, lstm_hidden=16), "hf": {},
         "frozen": dict(lstm_hidden=16)}


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return tm.make_bert_dir(tmp_path_factory.mktemp("bert") / "bert")


def encoder_name(kind: str, bert: Path) -> str:
    return {"bilstm": "bilstm", "hf": str(bert), "frozen": f"frozen:{bert}"}[kind]


def trained(kind: str, bert: Path, steps: int = 5) -> Tagger:
    torch.manual_seed(0)
    data = tm.toy_sentences(20)
    tagger = Tagger.build(TaggerConfig(encoder=encoder_name(kind, bert), labels=tm.TOY_LABELS,
                                       encoder_options=SMALL[kind]), data)
    optimizer = torch.optim.Adam([p for p in tagger.parameters() if p.requires_grad], lr=0.01)
    batch = tagger.collator()(data)
    for _ in range(steps):
        optimizer.zero_grad()
        tagger(batch).backward()
        optimizer.step()
    return tagger.eval()


def test_the_registry_picks_the_kind_from_the_name():
    assert encoder_class("bilstm") is BiLSTMEncoder
    assert encoder_class("frozen:bert-base-cased") is FrozenStackEncoder
    assert encoder_class("bert-base-cased") is HFEncoder and encoder_class("./my/model") is HFEncoder
    assert registry.ENCODERS[-1] is HFEncoder  # the catch-all comes last


@pytest.mark.parametrize("kind", ["bilstm", "hf", "frozen"])
def test_every_encoder_trains_saves_and_loads_through_the_interface(kind, bert, tmp_path):
    tagger = trained(kind, bert)
    data = tm.toy_sentences(6, seed=3)
    before = tagger.predict(data)
    tagger.save_pretrained(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["format_version"] == 3 and config["encoder_kind"] == type(tagger.encoder).kind and config["encoder"] == encoder_name(kind, bert)
    assert set(type(tagger.encoder).files) <= {p.name for p in (tmp_path / "model").iterdir()}
    loaded = Tagger.from_pretrained(tmp_path / "model")
    assert type(loaded.encoder) is type(tagger.encoder) and loaded.config == tagger.config
    for a, b in zip(before, loaded.predict(data)):
        assert a.tags == b.tags and torch.allclose(torch.tensor(a.token_confidence), torch.tensor(b.token_confidence))


def test_the_frozen_stack_trains_only_its_bilstm(bert):
    torch.manual_seed(0)
    data = tm.toy_sentences(16)
    tagger = Tagger.build(TaggerConfig(encoder=f"frozen:{bert}", labels=tm.TOY_LABELS,
                                       encoder_options={"lstm_hidden": 8}))
    base = {k: v.clone() for k, v in tagger.encoder.base.state_dict().items()}
    lstm = tagger.encoder.lstm.weight_ih_l0.detach().clone()
    optimizer = build_optimizer(tagger, lr=1e-2, head_lr=1e-2)
    assert all(not name.startswith("encoder.base.") for group in optimizer.param_groups for name in [group["name"]])
    tagger.train()
    assert tagger.encoder.training and not tagger.encoder.base.training  # no dropout in the frozen features
    batch = tagger.collator()(data)
    for _ in range(3):
        optimizer.zero_grad()
        tagger(batch).backward()
        optimizer.step()
    assert all(torch.equal(base[k], v) for k, v in tagger.encoder.base.state_dict().items())
    assert not torch.equal(lstm, tagger.encoder.lstm.weight_ih_l0)
    assert tagger.config.encoder_options == {"lstm_hidden": 8, "lstm_layers": 1, "max_length": 512, "stride": 128}


def test_the_window_comes_from_the_encoder(tmp_path):
    small = tm.make_bert_dir(tmp_path / "small", max_positions=64)
    tagger = Tagger.build(TaggerConfig(encoder=str(small), labels=tm.TOY_LABELS))
    assert tagger.config.encoder_options == {"max_length": 64, "stride": 16}
    long = tm.toy_sentences(1)[0].__class__(tokens=("john",) * 150)  # 152 sub-words: three windows
    assert len(tagger.predict([long])[0].tags) == 150
    with pytest.raises(ConfigError, match=r"max_length=65 exceeds .* 64 sub-words \(max_position_embeddings=64\)"):
        Tagger.build(TaggerConfig(encoder=str(small), labels=tm.TOY_LABELS, encoder_options={"max_length": 65}))
    with pytest.raises(ConfigError, match=r"stride < max_length=64, got stride=64"):  # stride checked after the window
        Tagger.build(TaggerConfig(encoder=str(small), labels=tm.TOY_LABELS, encoder_options={"stride": 64}))
    with pytest.raises(ConfigError, match="the bilstm encoder .* has no option hidden; its options are word_dim"):
        Tagger.build(TaggerConfig(encoder="bilstm", labels=tm.TOY_LABELS, encoder_options={"hidden": 3}),
                     tm.toy_sentences(2))


# ---------------------------------------------------------------------------- layered defaults


def test_defaults_come_in_layers_with_their_source():
    plain = TrainConfig(encoder="bilstm")  # the issue's case: no lr flag must not mean the BERT lr
    assert (plain.lr, plain.head_lr, plain.epochs) == (1e-2, 1e-2, 10)
    assert plain.sources["lr"] == "encoder" and plain.sources["batch_size"] == "default"
    sample = TrainConfig.for_dataset("sample", lr=1e-2)
    assert sample.sources["encoder"] == "dataset" and sample.sources["epochs"] == "dataset"
    assert (sample.lr, sample.sources["lr"]) == (1e-2, "flag")
    assert (sample.head_lr, sample.sources["head_lr"]) == (1e-2, "encoder")
    assert (sample.max_grad_norm, sample.sources["max_grad_norm"]) == (5.0, "encoder")
    assert sample.sources["dataset"] == "flag" and sample.sources["encoder_options"] == "default"
    bert = dataclasses.replace(sample, encoder="bert-base-cased")  # encoder-sourced values follow the encoder
    assert (bert.max_grad_norm, bert.layer_decay, bert.lr, bert.head_lr) == (1.0, 0.9, 1e-2, 1e-3)
    assert bert.sources["encoder"] == "flag"
    frozen = TrainConfig.for_dataset("conll2003", encoder="frozen:some/model")
    assert frozen.lr == FrozenStackEncoder.recommended()["lr"] and frozen.sources["lr"] == "encoder"


def test_a_dataset_preset_never_sets_the_encoders_optimiser_settings():
    """The sample preset with a BERT must fine-tune at a BERT's rate, not at a BiLSTM's (the preset
    once carried lr 3e-3, which every encoder then inherited)."""
    for name, preset in PRESETS.items():
        assert not set(preset) & set(ENCODER_TUNED) - {"epochs"}, (name, preset)
    bert = TrainConfig.for_dataset("sample", encoder="bert-base-cased")
    assert (bert.lr, bert.head_lr, bert.layer_decay) == (5e-5, 1e-3, 0.9)
    assert bert.sources["lr"] == "encoder" and bert.sources["epochs"] == "dataset"


def test_train_config_is_flattened_from_its_groups_without_restating_them():
    from mcrf.data import LoadConfig

    groups = {**{f.name: f for f in dataclasses.fields(LoadConfig)},
              **{f.name: f for f in dataclasses.fields(TaggerConfig) if f.name != "scheme"},
              **{f.name: f for f in dataclasses.fields(OptimConfig)}}
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    shared = sorted(set(groups) & set(fields))
    assert "lr" in shared and "encoder" in shared and "policy" in shared and "dev_fraction" in shared
    for name in shared:  # one validator and one help text per field, wherever it appears
        assert fields[name].metadata["check"] is groups[name].metadata["check"], name
        assert fields[name].metadata["help"] == groups[name].metadata["help"], name
    for field in fields.values():
        assert field.name == "sources" or field.metadata.get("help"), field.name


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 0.0, -1e-3, 2.0, "1e-3", True])
def test_non_finite_or_out_of_range_head_lr_is_refused_by_its_validator(value):
    with pytest.raises(ConfigError, match="expected a finite number 0 < head_lr <= 1"):
        TrainConfig(head_lr=value)
    with pytest.raises(ConfigError, match="head_lr"):
        TrainConfig.for_dataset("sample", head_lr=value)


def test_cli_flags_are_generated_from_the_fields(capsys):
    from mcrf.cli.app import main

    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--head-lr" in out and "layer-wise learning-rate decay" in out and "--no-bucket" in out
    assert "encoder's recommendation" in out and "sample preset: encoder=bilstm" in out


# ---------------------------------------------------------------------------- training with the interface


def _toy_corpus(tmp_path: Path) -> str:
    from test_training import write_toy_corpus

    return str(write_toy_corpus(tmp_path / "corpus"))


def test_a_bert_with_64_positions_trains_with_no_max_length_and_the_header_shows_sources(tmp_path, caplog):
    small = tm.make_bert_dir(tmp_path / "small", max_positions=64)
    config = TrainConfig.for_dataset(_toy_corpus(tmp_path), encoder=str(small), output_dir=str(tmp_path / "run"),
                                     epochs=1, batch_size=8)
    with caplog.at_level(logging.INFO, logger="mcrf"):
        result = train(config)
    header = caplog.text
    assert re.search(r"encoder_options\.max_length +64 +\(encoder\)", header)
    assert re.search(r"encoder_options\.stride +16 +\(encoder\)", header)
    assert re.search(r"lr +5e-05 +\(encoder\)", header) and re.search(r"epochs +1 +\(flag\)", header)
    assert re.search(r"batch_size +8 +\(flag\)", header) and re.search(r"seed +42 +\(default\)", header)
    assert Tagger.from_pretrained(result.model_dir).config.encoder_options["max_length"] == 64
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["sources"]["lr"] == "encoder" and metrics["sources"]["epochs"] == "flag"
    first = json.loads((tmp_path / "run" / "train_log.jsonl").read_text().splitlines()[0])
    assert first["event"] == "settings"
    assert first["settings"]["encoder_options.max_length"] == {"value": 64, "source": "encoder"}
    assert first["settings"]["head_lr"] == {"value": 1e-3, "source": "encoder"}


@dataclass
class CharBagOptions:
    dim: int = option(8, check=integer(1), help="embedding size")


class CharBagEncoder(Encoder):
    """A toy fourth kind, defined outside mcrf: each word is the mean of its characters' embeddings."""

    kind = "charbag"
    Options = CharBagOptions

    def __init__(self, options: CharBagOptions) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(256, options.dim)
        self.dim = options.dim

    @classmethod
    def accepts(cls, name):
        return name == "charbag"

    @classmethod
    def recommended(cls):
        return {"lr": 1e-2, "head_lr": 1e-2, "layer_decay": 1.0, "weight_decay": 0.0, "warmup_ratio": 0.0,
                "max_grad_norm": 1.0, "epochs": 2}

    @classmethod
    def create(cls, config, train_sentences=None):
        return cls(cls.options(config))

    @classmethod
    def load(cls, config, directory, saved):
        return cls(cls.options(config))

    @property
    def hidden_size(self):
        return self.dim

    def featurizer(self):
        return featurize_chars

    def forward(self, batch):
        codes, mask = batch["codes"], batch["word_mask"]  # shape: (B, W, C), (B, W)
        flat = self.embedding(codes.flatten(0, 1))  # shape: (B*W, D)
        return flat.view(*mask.shape, -1)  # shape: (B, W, D)


def featurize_chars(sentences):
    width = max((len(s) for s in sentences), default=0)
    codes = torch.zeros(len(sentences), width, 8, dtype=torch.long)
    mask = torch.zeros(len(sentences), width, dtype=torch.bool)
    for b, words in enumerate(sentences):
        for t, word in enumerate(words):
            codes[b, t, : len(word[:8])] = torch.tensor([min(ord(c), 255) for c in word[:8]])
        mask[b, : len(words)] = True
    return {"codes": codes, "word_mask": mask}


@pytest.fixture
def charbag():
    """``CharBagEncoder`` registered as ``charbag`` through the public API, for one test."""
    register_encoder("charbag", CharBagEncoder)
    yield CharBagEncoder
    unregister_encoder("charbag")


def test_a_new_encoder_is_one_class_registered_from_outside_mcrf(tmp_path, charbag):
    """Trains on the sample, saves, loads and resumes, with no edit of mcrf (issue 18)."""
    config = TrainConfig.for_dataset("sample", encoder="charbag", output_dir=str(tmp_path / "run"),
                                     batch_size=8, max_steps=3, max_eval_sentences=20)
    assert config.lr == 1e-2 and config.sources["lr"] == "encoder" and config.sources["epochs"] == "dataset"
    result = train(config)
    tagger = Tagger.from_pretrained(result.model_dir)
    assert isinstance(tagger.encoder, CharBagEncoder) and "`charbag`" in (Path(result.model_dir) / "README.md").read_text()
    assert tagger.config.encoder_options == {"dim": 8}
    resumed = train(dataclasses.replace(config, resume=True, max_steps=6))
    assert resumed.global_step == 6


def test_registering_a_taken_name_or_a_non_encoder_is_an_error(charbag):
    for name in ("charbag", "bilstm", "frozen:some/bert"):
        with pytest.raises(ConfigError, match=f"the encoder name '{re.escape(name)}' is taken"):
            register_encoder(name, CharBagEncoder)
    with pytest.raises(TypeError, match="abstract: .*forward"):
        register_encoder("half", type("Half", (Encoder,), {"create": classmethod(lambda cls, c, t=None: None)}))
    with pytest.raises(TypeError, match="concrete subclass"):
        register_encoder("module", nn.Linear)
    with pytest.raises(ConfigError, match="no encoder is registered as 'nothing'"):
        unregister_encoder("nothing")


def test_the_base_class_names_no_option_of_a_particular_encoder():
    """Issue 18: base.py listed the BiLSTM sizes (for format 1); the upgrade now asks each encoder's Options."""
    from mcrf.models.encoders.bilstm import BiLSTMOptions
    from mcrf.models.encoders.hf import HFOptions

    source = (ROOT / "mcrf" / "models" / "encoders" / "base.py").read_text(encoding="utf-8")
    named = [f.name for cls in (BiLSTMOptions, HFOptions) for f in dataclasses.fields(cls) if f.name in source]
    assert not named


def test_the_encoder_base_class_is_abstract():
    assert inspect.isabstract(Encoder)
    assert {"create", "load", "featurizer", "forward", "hidden_size"} <= Encoder.__abstractmethods__
    with pytest.raises(TypeError, match="abstract"):
        Encoder()


def test_a_model_folder_naming_an_unregistered_encoder_says_how_to_register_it(tmp_path, charbag):
    tagger = Tagger.build(TaggerConfig(encoder="charbag", labels=tm.TOY_LABELS))
    tagger.save_pretrained(tmp_path / "model")
    unregister_encoder("charbag")
    try:
        with pytest.raises(ModelDirError, match=r"holds a 'charbag' encoder named 'charbag'.*"
                                                r"register_encoder\('charbag', ItsEncoderClass\)") as error:
            Tagger.from_pretrained(tmp_path / "model")
        assert "\n" not in str(error.value)
    finally:
        register_encoder("charbag", CharBagEncoder)


def test_no_encoder_kind_branches_outside_the_encoders():
    pattern = re.compile(r"is_bilstm|_aligner\b|isinstance\([^)]*(BiLSTM|HFEncoder|Frozen)|== \"bilstm\"|"
                         r"encoder_config|\.vocab\b")
    offenders = []
    for path in (ROOT / "mcrf").rglob("*.py"):
        if "encoders" in path.relative_to(ROOT / "mcrf").parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line) and "format 1" not in line and "format-1" not in line:
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, offenders


def test_the_window_is_named_only_by_the_hugging_face_encoder_and_the_alignment():
    """Issue 18: max_length/stride are the Hugging Face encoder's options, not tagger or training fields. The
    converter to the Hugging Face class names them too: it maps that encoder's options to the class's window."""
    owners = {Path("mcrf/models/encoders/hf.py"), Path("mcrf/data/alignment.py"), Path("mcrf/hf/convert.py")}
    named = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "mcrf").rglob("*.py")
                   if "max_length" in path.read_text(encoding="utf-8") and path.relative_to(ROOT) not in owners)
    assert not named
    assert "max_length" not in {f.name for f in dataclasses.fields(TaggerConfig)} | set(TrainConfig.field_names())


def test_format_1_models_still_load(bert, tmp_path):
    from safetensors.torch import load_file, save_file

    for kind in ("bilstm", "hf"):
        tagger = trained(kind, bert, steps=2)
        data = tm.toy_sentences(4, seed=5)
        before = [p.tags for p in tagger.predict(data)]
        directory = tmp_path / kind
        tagger.save_pretrained(directory)
        config = json.loads((directory / "config.json").read_text())
        state = config.pop("encoder_state")
        options = config.pop("encoder_options")
        old = {**config, "format_version": 1, "encoder_config": state.get("encoder_config")}
        if kind == "bilstm":
            old.update(options)  # format 1 kept the BiLSTM sizes as top-level keys
            old.update(max_length=512, stride=128)
        (directory / "config.json").write_text(json.dumps(old))
        if kind == "hf":  # format 1 held the AutoModel itself as `encoder`
            weights = load_file(str(directory / "model.safetensors"))
            save_file({k.replace("encoder.model.", "encoder.", 1): v for k, v in weights.items()},
                      str(directory / "model.safetensors"))
        assert [p.tags for p in Tagger.from_pretrained(directory).predict(data)] == before


@pytest.mark.parametrize("kind", ["bilstm", "hf", "frozen"])
def test_format_2_models_with_the_window_at_the_top_level_still_load(kind, bert, tmp_path):
    """Format 2 (before the window became a Hugging Face encoder option) kept max_length/stride as
    top-level TaggerConfig keys, null for a BiLSTM, and no encoder_kind."""
    tagger = trained(kind, bert, steps=2)
    data = tm.toy_sentences(4, seed=5)
    before = [p.tags for p in tagger.predict(data)]
    directory = tmp_path / kind
    tagger.save_pretrained(directory)
    config = json.loads((directory / "config.json").read_text())
    del config["encoder_kind"]
    options = config["encoder_options"]
    window = {name: options.pop(name, None) for name in ("max_length", "stride")}
    if kind != "bilstm":
        window = {"max_length": 16, "stride": 4}  # a window set by hand, not the encoder's default
    (directory / "config.json").write_text(json.dumps({**config, **window, "format_version": 2}))
    loaded = Tagger.from_pretrained(directory)
    if kind == "bilstm":
        assert loaded.config.encoder_options == tagger.config.encoder_options
        assert [p.tags for p in loaded.predict(data)] == before
    else:
        assert loaded.config.encoder_options == {**tagger.config.encoder_options, **window}
        assert loaded.encoder.featurizer()([["john"] * 40])["input_ids"].shape[1] <= 16  # the saved window is used


@pytest.mark.parametrize("kind", ["bilstm", "bert"])
def test_format_2_folders_written_by_the_old_mcrf_load_and_predict_the_same(kind):
    """tests/data/format2 was saved by mcrf at 507e679 (its README says how): the window at the top level."""
    folder = ROOT / "tests" / "data" / "format2"
    expected = json.loads((folder / "expected.json").read_text())[kind]
    tagger = Tagger.from_pretrained(folder / kind)
    if kind == "bert":
        assert tagger.config.encoder_options == {"max_length": 12, "stride": 3}
    else:
        assert tagger.config.encoder_options["lstm_hidden"] == 4 and "max_length" not in tagger.config.encoder_options
    sentences = [tm.toy_sentences(1)[0].__class__(tokens=tuple(words)) for words in expected["sentences"]]
    assert [p.tags for p in tagger.predict(sentences)] == expected["tags"]


def _groups_by_the_old_regex(model, *, lr, head_lr, layer_decay, weight_decay):
    """``param_groups`` as it was before the encoders said which layer a parameter is in (a regex over names)."""
    layer = re.compile(r"^encoder\..*?\blayers?\.(\d+)\.")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    indices = [int(m.group(1)) for m in (layer.match(n) for n, _ in named) if m]
    num_layers = max(indices) + 1 if indices else 0
    groups = {}
    for name, param in named:
        if name.startswith("encoder."):
            match = layer.match(name)
            if match:
                depth = int(match.group(1)) + 1
            elif "embeddings" in name.split(".")[1:3]:
                depth = 0
            else:
                depth = num_layers + 1
            group_lr = lr * layer_decay ** max(0, num_layers - depth) if num_layers else lr
            key = f"encoder.depth{depth}"
        else:
            group_lr, key = head_lr, "head"
        lowered = name.lower()
        decay = not (param.ndim < 2 or "norm" in lowered or lowered.endswith("bias") or name.startswith("crf."))
        groups.setdefault((key, decay), {"name": f"{key}{'' if decay else '.no_decay'}", "params": [], "lr": group_lr,
                                         "weight_decay": weight_decay if decay else 0.0})["params"].append(name)
    return list(groups.values())


def test_layer_wise_decay_asks_the_encoder_and_gives_the_same_groups_as_the_old_regex(tmp_path):
    from transformers import DistilBertConfig, DistilBertModel

    from mcrf.training.optim import param_groups

    bert = tm.make_bert_dir(tmp_path / "bert", layers=3)
    distil = tmp_path / "distil"
    DistilBertModel(DistilBertConfig(vocab_size=len(tm.WORDS) + 10, dim=16, n_layers=2, n_heads=2, hidden_dim=32,
                                     max_position_embeddings=64)).save_pretrained(distil)
    for path in bert.iterdir():
        if path.name.startswith(("tokenizer", "vocab", "special")):
            (distil / path.name).write_bytes(path.read_bytes())
    expected_lrs = {"bert": [0.125, 0.25, 0.5, 1.0, 10.0], "distil": [0.25, 0.5, 1.0, 10.0],
                    "bilstm": [1.0, 10.0], "frozen": [1.0, 10.0]}
    for key, name in (("bert", str(bert)), ("distil", str(distil)), ("bilstm", "bilstm"), ("frozen", f"frozen:{bert}")):
        tagger = Tagger.build(TaggerConfig(encoder=name, labels=tm.TOY_LABELS, encoder_options=SMALL.get(key, {})),
                              tm.toy_sentences(4))
        names = {id(p): n for n, p in tagger.named_parameters()}
        settings = dict(lr=1.0, head_lr=10.0, layer_decay=0.5, weight_decay=0.1)
        now = [{"name": g["name"], "params": [names[id(p)] for p in g["params"]], "lr": g["lr"],
                "weight_decay": g["weight_decay"]} for g in param_groups(tagger, **settings)]
        assert now == _groups_by_the_old_regex(tagger, **settings), key
        assert sorted({g["lr"] for g in now}) == expected_lrs[key], key  # the decay really steps over the layers


def test_the_window_flags_reach_a_hugging_face_encoder_and_are_an_error_with_the_bilstm(capsys, monkeypatch,
                                                                                           tmp_path):
    """Issue 17: `--max-length` with the BiLSTM was accepted and ignored."""
    from mcrf.cli import app
    from mcrf.errors import UserError

    seen = {}

    def fake_train(config, **options):
        seen["config"] = config
        raise UserError("stop here")

    monkeypatch.setattr("mcrf.training.train", fake_train)
    assert app.main(["train", "sample", "--encoder", "some/bert", "--max-length", "64", "--stride", "8"]) == 1
    assert seen["config"].encoder_options == {"max_length": 64, "stride": 8}
    assert seen["config"].sources["encoder_options"] == "flag"
    assert app.main(["train", "sample", "--encoder", "frozen:some/bert", "--max-length", "64"]) == 1
    assert seen["config"].encoder_options == {"max_length": 64}
    capsys.readouterr()
    assert app.main(["train", "sample", "--max-length", "64"]) == 2  # the sample preset's encoder: bilstm
    err = capsys.readouterr().err
    assert "the bilstm encoder ('bilstm') has no option max_length" in err and "Traceback" not in err


def test_a_bug_inside_the_hugging_face_encoder_is_not_retold_as_a_config_error(bert, monkeypatch):
    """hf.py once turned any ValueError of the aligner into a ConfigError (the user's fault, exit 2)."""
    from mcrf.errors import UserError
    from mcrf.models.encoders import hf

    def broken(*args, **kwargs):
        raise ValueError("a bug in the aligner")

    monkeypatch.setattr(hf, "SubwordAligner", broken)
    with pytest.raises(ValueError, match="a bug in the aligner") as error:
        Tagger.build(TaggerConfig(encoder=str(bert), labels=tm.TOY_LABELS))
    assert not isinstance(error.value, UserError)


# ---------------------------------------------------------------------------- real corpora

SHARED = data_dir()  # $MCRF_DATA_DIR, else ../shared/data


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"real corpora not available at {SHARED}")
def test_bilstm_with_no_learning_rate_flags_learns_a_real_corpus(tmp_path):
    """The issue's case: `mcrf train DIR --encoder bilstm` with no lr flags must train (it got dev F1 0.00 with the
    BERT lr). ATIS, first 1,000 training sentences, 3 epochs: dev F1 82.25 measured (test 80.50); the bound leaves
    room for thread-count and platform differences."""
    config = TrainConfig.for_dataset("atis", data_dir=str(SHARED), encoder="bilstm", output_dir=str(tmp_path / "run"),
                                     max_train_sentences=1000, epochs=3)
    assert {config.sources[name] for name in ("lr", "head_lr", "warmup_ratio", "max_grad_norm")} == {"encoder"}
    result = train(config)
    assert result.metrics["dev"]["f1"] > 0.70, result.metrics["dev"]
