"""Int8 CPU prediction: ``Tagger.from_pretrained(..., quantize="int8")`` and ``mcrf predict --quantize int8``.

Models: a tiny random BERT from a ``BertConfig`` (``tiny_models.make_bert_dir``), saved and reloaded,
and a BiLSTM tagger (refused: no Linear layer); nothing is downloaded. Speed and F1 on real data are measured by
``benchmarks/predict_speed.py``, never asserted here.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch import nn

import tiny_models as tm
from mcrf.cli.app import main
from mcrf.cli.util import load_tagger
from mcrf.errors import ConfigError
from mcrf.models import Tagger, TaggerConfig
from mcrf.models.quantize import (QUANTIZATIONS, TokenScaledInt8Linear, check_quantization, is_quantized,
                                  quantize_module)
from mcrf.predict.stream import PredictConfig
from tiny_models import one_torch_thread  # noqa: F401

LINES = ["john smith visited paris .", "", "the acme corp said mary met peter jones today .",
         "a lee and anna lee visited new york and rome", "unseenword in berlin"]


@pytest.fixture(scope="module")
def bert_model(tmp_path_factory):
    """A saved float32 tagger on a tiny random BERT (4 layers, so int8 error can accumulate)."""
    root = tmp_path_factory.mktemp("quant")
    bert = tm.make_bert_dir(root / "bert", hidden=64, layers=4, heads=4)
    torch.manual_seed(0)
    Tagger.build(TaggerConfig(encoder=str(bert), labels=tm.TOY_LABELS, scheme="BIO")).save_pretrained(root / "model")
    return root / "model"


@pytest.fixture(scope="module")
def bilstm_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("quant-bilstm")
    torch.manual_seed(0)
    config = TaggerConfig(encoder="bilstm", labels=tm.TOY_LABELS, scheme="BIO",
                          encoder_options=dict(lstm_hidden=32, word_dim=16))
    Tagger.build(config, train_sentences=tm.toy_sentences(40)).save_pretrained(root / "model")
    return root / "model"


def _outputs(tagger, sentences):
    """``Decoded`` per sentence (tags, token confidences, spans: compared exactly)."""
    return tagger.predict(sentences, batch_size=8)


def _emissions(tagger, sentences):
    batch = tagger.collator(with_tags=False)(sentences)
    with torch.inference_mode():
        return tagger.eval().emissions(batch)


def test_int8_replaces_the_encoder_linear_layers_and_keeps_head_and_crf_float(bert_model):
    tagger = Tagger.from_pretrained(bert_model, quantize="int8")
    kinds = {type(m) for m in tagger.encoder.modules()}
    assert TokenScaledInt8Linear in kinds and torch.ao.nn.quantized.dynamic.Linear in kinds and nn.Linear not in kinds
    assert type(tagger.head) is nn.Linear and tagger.head.weight.dtype == torch.float32
    assert tagger.crf.transitions.dtype == torch.float32
    assert is_quantized(tagger) and not is_quantized(Tagger.from_pretrained(bert_model))
    assert not tagger.training


def test_int8_predictions_are_deterministic_across_loads_and_runs(bert_model):
    sentences = tm.toy_sentences(30, seed=3)
    first = Tagger.from_pretrained(bert_model, quantize="int8")
    second = Tagger.from_pretrained(bert_model, quantize="int8")
    reference = _outputs(first, sentences)
    assert _outputs(first, sentences) == reference  # same process, same model
    assert _outputs(second, sentences) == reference  # a fresh load and quantization
    assert all(len(d.tags) == len(s.tokens) for d, s in zip(reference, sentences))


def test_int8_tags_of_a_sentence_do_not_depend_on_its_batch(bert_model):
    tagger = Tagger.from_pretrained(bert_model, quantize="int8")
    sentences = tm.toy_sentences(30, seed=3)
    batched = tagger.predict(sentences, batch_size=8)
    for sentence, together in zip(sentences, batched):
        [alone] = tagger.predict([sentence], batch_size=1)
        assert alone.tags == together.tags and alone.spans == together.spans
        assert alone.token_confidence == pytest.approx(together.token_confidence, abs=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")  # torch.ao's, for the contrast
def test_token_scaled_linear_scales_each_row_alone():
    torch.manual_seed(0)
    linear = nn.Linear(16, 8)
    rows = torch.randn(3, 16)  # shape: (3, 16)
    loud = torch.cat([rows, 100 * torch.randn(1, 16)])  # a row 100x larger joins the batch; shape: (4, 16)
    layer = nn.Sequential(linear)
    quantize_module(layer, "int8")
    assert isinstance(layer[0], TokenScaledInt8Linear)
    with torch.inference_mode():
        assert torch.equal(layer(loud)[:3], layer(rows))  # the same grid per row, whatever the batch
        assert torch.equal(layer(rows[1:2])[0], layer(rows)[1])
        assert (layer(rows) - linear(rows)).abs().max() < 0.02 * linear(rows).abs().max()
        assert layer(rows.reshape(3, 1, 16)).shape == (3, 1, 8)  # leading dimensions kept
        # the kernel alone scales by the batch: the loud row coarsens the others' grid
        plain = torch.ao.quantization.quantize_dynamic(nn.Sequential(linear), {nn.Linear}, dtype=torch.qint8)
        assert not torch.equal(plain(loud)[:3], plain(rows))


def test_int8_emissions_stay_close_to_float32(bert_model):
    sentences = tm.toy_sentences(16, seed=5)
    exact = _emissions(Tagger.from_pretrained(bert_model), sentences)  # shape: (B, W, K)
    approx = _emissions(Tagger.from_pretrained(bert_model, quantize="int8"), sentences)  # shape: (B, W, K)
    assert approx.dtype == torch.float32 and approx.shape == exact.shape
    assert not torch.equal(approx, exact)  # int8 really ran
    # int8 weights per channel, int8 activations per token: measured ~0.1% of the scores' spread
    assert (approx - exact).abs().mean() < 0.01 * exact.std()


def test_encoders_without_linear_layers_are_refused(bilstm_model):
    with pytest.raises(ConfigError, match="has no Linear layer, so int8 would change nothing; drop quantize"):
        Tagger.from_pretrained(bilstm_model, quantize="int8")


def test_quantize_module_emits_no_deprecation_warnings(bert_model):
    tagger = Tagger.from_pretrained(bert_model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quantize_module(tagger.encoder, "int8")
        tagger.predict(tm.toy_sentences(2))
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "mps", "meta", torch.device("cuda", 0)])
def test_int8_is_refused_on_devices_other_than_the_cpu(bert_model, device):
    with pytest.raises(ConfigError, match=r"runs on the CPU only .* pass device cpu, or drop quantize"):
        Tagger.from_pretrained(bert_model, device=device, quantize="int8")
    with pytest.raises(ConfigError, match="CPU only"):
        PredictConfig(quantize="int8", device=str(device))
    check_quantization("int8", "cpu")  # fine
    check_quantization(None, device)  # float32 runs anywhere


def test_unknown_quantization_and_quantized_saves_are_refused(bert_model, tmp_path):
    assert QUANTIZATIONS == ("int8",)
    for bad in ("int4", "INT8", "fp16"):
        with pytest.raises(ConfigError, match=r"unknown quantization .* expected one of int8"):
            Tagger.from_pretrained(bert_model, quantize=bad)
        with pytest.raises(ConfigError, match="unknown quantization"):
            PredictConfig(quantize=bad)
    tagger = Tagger.from_pretrained(bert_model, quantize="int8")
    with pytest.raises(ConfigError, match="cannot be saved; save the float32 model"):
        tagger.save_pretrained(tmp_path / "int8")
    assert not (tmp_path / "int8").exists()
    with pytest.raises(ConfigError, match="has no Linear layer"):
        quantize_module(nn.Sequential(nn.Embedding(4, 2), nn.LayerNorm(2)), "int8")


def test_cli_without_device_runs_int8_on_the_cpu_even_when_cuda_is_available(bert_model, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    tagger = load_tagger(str(bert_model), None, "int8")
    assert next(tagger.parameters()).device.type == "cpu" and is_quantized(tagger)


def test_cli_predict_quantize_flag(bert_model, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    records = []
    for name in ("a.jsonl", "b.jsonl"):
        code = main(["predict", str(source), "--model", str(bert_model), "--format", "jsonl", "--quantize", "int8",
                     "--output", str(tmp_path / name)])
        assert code == 0, capsys.readouterr().err
        records.append([json.loads(x) for x in (tmp_path / name).read_text(encoding="utf-8").splitlines()])
    assert records[0] == records[1]  # two processes' worth of loading + quantizing, same output
    assert [r["text"] for r in records[0]] == LINES
    assert all(len(r["tags"]) == len(r["tokens"]) for r in records[0])
    assert "--quantize {int8}" in _help(capsys)

    code = main(["predict", str(source), "--model", str(bert_model), "--quantize", "int8", "--device", "meta"])
    err = capsys.readouterr().err
    assert code == 2 and "runs on the CPU only" in err and "Traceback" not in err
    code = main(["predict", str(source), "--model", str(bert_model), "--quantize", "int4"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown quantization 'int4'" in err


def _help(capsys) -> str:
    main(["predict", "--help"])
    return capsys.readouterr().out


def test_issue17_int8_weights_are_quantized_once_and_kept_beside_the_model(bert_model, tmp_path, monkeypatch):
    """``--quantize int8`` re-quantized at every load (slower than float32 as a whole process on 600 sentences)."""
    import os
    import shutil

    import mcrf.models.quantize as quantize
    from mcrf.models.int8cache import CACHE_FILE
    from safetensors.torch import load_file

    model = tmp_path / "model"
    shutil.copytree(bert_model, model)
    sentences = tm.toy_sentences(20, seed=4)
    fresh = _emissions(Tagger.from_pretrained(model, quantize="int8"), sentences)
    cache = model / CACHE_FILE
    assert cache.is_file() and all(t.dtype in (torch.int8, torch.float64, torch.int64)
                                   for t in load_file(cache).values())  # plain tensors, no pickle

    def refuse(weight):
        raise AssertionError("quantized again although the int8 weights are kept")

    monkeypatch.setattr(quantize, "int8_weight", refuse)
    assert torch.equal(_emissions(Tagger.from_pretrained(model, quantize="int8"), sentences), fresh)
    monkeypatch.undo()
    os.utime(model / "model.safetensors", ns=(1, 1))  # other float32 weights: the cache is stale, computed again
    before = cache.stat().st_mtime_ns
    assert torch.equal(_emissions(Tagger.from_pretrained(model, quantize="int8"), sentences), fresh)
    assert cache.stat().st_mtime_ns != before
    Tagger.from_pretrained(model).save_pretrained(model)  # saving again keeps no stale cache
    assert not cache.exists()
    model.chmod(0o555)  # a read-only folder: quantized at each load, no error
    try:
        assert torch.equal(_emissions(Tagger.from_pretrained(model, quantize="int8"), sentences), fresh)
        assert not cache.exists() or os.geteuid() == 0
    finally:
        model.chmod(0o755)
