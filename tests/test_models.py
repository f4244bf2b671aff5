"""Tagger: config validation, gradients, overfitting with every decoder, batching, legality, post-processing."""

from __future__ import annotations

import pickle
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mcrf.crf import schemes, spans
from mcrf.data.types import Sentence
from mcrf.models import Decoded, Tagger, TaggerConfig
from mcrf.models.encoders.bilstm import BiLSTMVocab
from mcrf.models.decoding import make_decoded, postprocess

import tiny_models as tm
from tiny_models import one_torch_thread  # noqa: F401  (autouse fixture)

DECODERS = ["mcrf", "mcrf-decoding", "crf", "softmax"]
SMALL_LSTM = dict(encoder_options=dict(word_dim=16, char_dim=8, char_filters=8, lstm_hidden=16))


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return tm.make_bert_dir(tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="module")
def sentences():
    return tm.toy_sentences(20, seed=0)


def make_tagger(encoder, decoder="mcrf", train=None, **overrides):
    torch.manual_seed(0)
    extra = SMALL_LSTM if encoder == "bilstm" else dict(encoder_options=dict(max_length=16, stride=4))
    config = TaggerConfig(encoder=str(encoder), labels=tm.TOY_LABELS, decoder=decoder, **{**extra, **overrides})
    return Tagger.build(config, train if train is not None else tm.toy_sentences(20, seed=0))


def span_f1(predictions, sentences, scheme="BIO"):
    gold = {(i, s) for i, x in enumerate(sentences) for s in spans.get_spans(x.tags, scheme)}
    pred = {(i, (l, a, b)) for i, p in enumerate(predictions) for (l, a, b, _) in p.spans}
    if not gold and not pred:
        return 1.0
    tp = len(gold & pred)
    return 2 * tp / (len(gold) + len(pred))


# ---------------------------------------------------------------- config


def test_config_round_trip_and_validation():
    config = TaggerConfig(labels=tm.TOY_LABELS, scheme="iob2", decoder="crf", postprocess="discard")
    assert config.scheme == "BIO"
    assert TaggerConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown TaggerConfig keys"):
        TaggerConfig.from_dict({**config.to_dict(), "decoderr": "crf"})
    with pytest.raises(ValueError, match="decoder"):
        TaggerConfig(labels=tm.TOY_LABELS, decoder="viterbi")
    with pytest.raises(ValueError, match="non-empty label"):
        TaggerConfig(labels=[])
    with pytest.raises(ValueError, match="duplicates"):
        TaggerConfig(labels=["O", "O"])
    with pytest.raises(ValueError, match="dropout"):
        TaggerConfig(labels=tm.TOY_LABELS, dropout=1.0)
    with pytest.raises(ValueError):
        TaggerConfig(labels=tm.TOY_LABELS, scheme="XYZ")
    with pytest.raises(ValueError, match="E-PER"):
        TaggerConfig(labels=["O", "B-PER", "E-PER"], scheme="BIO", decoder="softmax")


def test_bilstm_vocab_min_count_lowercase_unknown():
    vocab = BiLSTMVocab.build([("The", "cat"), ("the", "dog")], min_count=2, lowercase=True)
    assert vocab.words == ["<pad>", "<unk>", "the"]
    assert vocab.word_id("THE") == 2 and vocab.word_id("cat") == 1
    assert vocab.char_ids("Tz!", limit=2) == [vocab.chars.index("T"), 1]
    assert BiLSTMVocab.from_dict(vocab.to_dict()).words == vocab.words
    with pytest.raises(ValueError, match="training sentences"):
        BiLSTMVocab.build([()])


def test_word_dropout_trains_the_unknown_word(sentences):
    tagger = make_tagger("bilstm", "mcrf", encoder_options=dict(SMALL_LSTM["encoder_options"], word_dropout=0.5))
    batch = tagger.collator()(sentences)
    tagger(batch).backward()
    unknown_row = tagger.encoder.word_embeddings.weight.grad[1]
    assert bool(unknown_row.abs().sum() > 0)  # no training word is unknown, yet <unk> learns
    tagger.eval()
    assert torch.equal(tagger.emissions(batch), tagger.emissions(batch))  # no word dropout at inference


# ---------------------------------------------------------------- training signal


@pytest.mark.parametrize("encoder", ["bilstm", "bert"])
@pytest.mark.parametrize("decoder", ["mcrf", "softmax"])
def test_every_parameter_gets_a_gradient(encoder, decoder, bert_dir, sentences):
    tagger = make_tagger("bilstm" if encoder == "bilstm" else bert_dir, decoder)
    loss = tagger(tagger.collator()(sentences))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in tagger.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not missing


@pytest.mark.parametrize("encoder", ["bilstm", "bert"])
@pytest.mark.parametrize("decoder", DECODERS)
def test_overfits_twenty_sentences(encoder, decoder, bert_dir, sentences):
    tagger = make_tagger("bilstm" if encoder == "bilstm" else bert_dir, decoder, dropout=0.0)
    batch = tagger.collator()(sentences)
    optimizer = torch.optim.Adam(tagger.parameters(), lr=0.03 if encoder == "bilstm" else 0.01)
    f1 = 0.0
    for step in range(1, 201):
        optimizer.zero_grad()
        tagger(batch).backward()
        optimizer.step()
        if step % 5 == 0:
            tagger.eval()
            f1 = span_f1(tagger.decode(batch), sentences)
            tagger.train()
            if f1 == 1.0:
                break
    assert f1 == 1.0


def test_softmax_loss_is_token_mean_cross_entropy(sentences):
    tagger = make_tagger("bilstm", "softmax", dropout=0.0).eval()
    batch = tagger.collator()(sentences)
    emissions = tagger.emissions(batch)
    mask = batch["word_mask"]
    expected = torch.nn.functional.cross_entropy(emissions[mask], batch["tags"][mask])
    assert torch.allclose(tagger(batch), expected)


def test_crf_loss_is_mean_sentence_nll(sentences):
    tagger = make_tagger("bilstm", "crf", dropout=0.0).eval()
    batch = tagger.collator()(sentences + [Sentence((), ())])  # an empty sentence carries no loss
    emissions = tagger.emissions(batch)[:-1]
    mask = batch["word_mask"][:-1]
    tags = batch["tags"][:-1].masked_fill(~mask, 0)
    expected = -tagger.crf(emissions, tags, mask, reduction="mean")
    assert torch.allclose(tagger(batch), expected)


# ---------------------------------------------------------------- prediction


def mixed_sentences():
    rng = random.Random(7)
    words = tm.PERSONS + tm.PLACES + tm.ORGS + tm.FILLER + ["unseen", "Zzz"]
    out = [Sentence(tuple(rng.choice(words) for _ in range(rng.randint(1, 12)))) for _ in range(13)]
    out.insert(3, Sentence(()))
    out.append(Sentence(tuple(rng.choice(words) for _ in range(120))))  # many windows of 16
    return out


@pytest.mark.parametrize("encoder", ["bilstm", "bert"])
@pytest.mark.parametrize("decoder", ["mcrf", "softmax"])
def test_batched_prediction_equals_one_by_one(encoder, decoder, bert_dir):
    tagger = make_tagger("bilstm" if encoder == "bilstm" else bert_dir, decoder)
    data = mixed_sentences()
    batched = tagger.predict(data, batch_size=4)
    assert tagger.training  # predict restores the mode
    single = [tagger.predict([s], batch_size=1)[0] for s in data]
    assert [len(p.tags) for p in batched] == [len(s.tokens) for s in data]
    assert batched[3] == Decoded()
    for a, b in zip(batched, single):
        assert a.tags == b.tags and a.raw_illegal == b.raw_illegal
        assert a.token_confidence == pytest.approx(b.token_confidence, abs=1e-5)
        assert [s[:3] for s in a.spans] == [s[:3] for s in b.spans]
        assert [s[3] for s in a.spans] == pytest.approx([s[3] for s in b.spans], abs=1e-5)


def test_confidences_are_crf_marginals(sentences):
    tagger = make_tagger("bilstm", "mcrf").eval()
    batch = tagger.collator(with_tags=False)(sentences[:5])
    decoded = tagger.decode(batch)
    marginals = tagger.crf.marginals(tagger.emissions(batch), batch["word_mask"])
    for b, d in enumerate(decoded):
        expected = [float(marginals[b, t, tagger.label_index[tag]]) for t, tag in enumerate(d.tags)]
        assert d.token_confidence == pytest.approx(expected, abs=1e-6)
        for label, start, end, confidence in d.spans:
            assert confidence == pytest.approx(min(expected[start:end]))
            assert 0.0 < confidence <= 1.0


def randomize(tagger, seed, scale=4.0):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        tagger.head.weight.copy_(torch.randn(tagger.head.weight.shape, generator=generator) * scale)
        if tagger.crf is not None:
            for p in (tagger.crf.transitions, tagger.crf.start_transitions, tagger.crf.end_transitions):
                p.copy_(torch.randn(p.shape, generator=generator) * scale)
    return tagger


@pytest.mark.parametrize("decoder", ["mcrf", "crf"])
def test_predict_runs_in_inference_mode_through_the_exact_marginals_fallback(decoder, sentences, monkeypatch):
    """Head weights x500 push the scores past the fast scan's range: the exact fallback runs, in inference mode."""
    from mcrf.crf import exact as crf_exact

    tagger = make_tagger("bilstm", decoder)
    with torch.no_grad():
        tagger.head.weight.mul_(500.0)
    modes = []
    real_exact = crf_exact.scores

    def spy(*args, **kwargs):
        modes.append(torch.is_inference_mode_enabled())
        return real_exact(*args, **kwargs)

    monkeypatch.setattr(crf_exact, "scores", spy)
    predictions = tagger.predict(sentences)
    assert modes and all(modes)  # the fallback ran, under torch.inference_mode
    for prediction, sentence in zip(predictions, sentences):
        assert len(prediction.tags) == len(sentence.tokens)
        # float32 at |scores| ~ 170: marginals come out up to ~1e-4 above 1 (not clamped in crf_ops)
        assert all(0.0 <= c <= 1.0 + 1e-3 for c in prediction.token_confidence)
    assert tagger.training  # the previous mode is restored


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), scheme=st.sampled_from(["BIO", "BIOES", "IOB1"]))
def test_masked_decoders_never_emit_illegal_sequences(seed, scheme):
    labels = schemes.scheme_labels(["PER", "LOC"], scheme)
    rng = random.Random(seed)
    words = tm.PERSONS + tm.FILLER
    data = [Sentence(tuple(rng.choice(words) for _ in range(rng.randint(1, 15)))) for _ in range(6)]
    for decoder in DECODERS:
        torch.manual_seed(seed)
        config = TaggerConfig(encoder="bilstm", labels=labels, scheme=scheme, decoder=decoder, **SMALL_LSTM)
        tagger = randomize(Tagger.build(config, data), seed)
        for prediction in tagger.predict(data):
            assert schemes.is_legal(prediction.tags, scheme)
            if decoder.startswith("mcrf"):
                assert not prediction.raw_illegal


def test_unmasked_decoders_flag_and_fix_illegal_output(sentences):
    seen = {"crf": 0, "softmax": 0}
    for decoder in seen:
        for policy in ("retain", "discard"):
            tagger = make_tagger("bilstm", decoder, postprocess=policy)
            randomize(tagger, seed=3)
            batch = tagger.collator(with_tags=False)(sentences)
            tagger.eval()
            emissions = tagger.emissions(batch)
            mask = batch["word_mask"]
            if decoder == "crf":
                raw_paths = tagger.crf.decode(emissions, mask)
            else:
                raw_paths = [emissions[b][mask[b]].argmax(-1).tolist() for b in range(len(sentences))]
            for path, prediction in zip(raw_paths, tagger.decode(batch)):
                raw = [tm.TOY_LABELS[k] for k in path]
                illegal = not schemes.is_legal(raw, "BIO")
                assert prediction.raw_illegal == illegal
                fix = spans.repair if policy == "retain" else spans.discard
                assert prediction.tags == (fix(raw, "BIO") if illegal else raw)
                seen[decoder] += illegal
    assert seen["crf"] > 0 and seen["softmax"] > 0  # random weights really produced illegal paths


def test_postprocess_hand_made_cases():
    tags = ["O", "I-PER", "I-PER", "O", "B-LOC", "I-LOC"]
    assert postprocess(tags, "BIO", "retain") == (["O", "B-PER", "I-PER", "O", "B-LOC", "I-LOC"], True)
    assert postprocess(tags, "BIO", "discard") == (["O", "O", "O", "O", "B-LOC", "I-LOC"], True)
    assert postprocess(["B-PER", "I-LOC"], "BIO", "retain") == (["B-PER", "B-LOC"], True)
    assert postprocess(["B-PER", "I-LOC"], "BIO", "discard") == (["B-PER", "O"], True)
    assert postprocess(["B-PER", "I-PER"], "BIO", "discard") == (["B-PER", "I-PER"], False)
    with pytest.raises(ValueError, match="retain"):
        postprocess(tags, "BIO", "keep")


def test_decoder_and_postprocess_names_have_one_home():
    from mcrf.models import config as model_config
    from mcrf.models import decoding
    from mcrf.training import config as train_config

    assert train_config.DECODERS is model_config.DECODERS  # re-exported for the CLI, not restated
    assert train_config.POSTPROCESS is model_config.POSTPROCESS
    assert decoding.POSTPROCESS is model_config.POSTPROCESS
    for policy in model_config.POSTPROCESS:
        assert postprocess(["I-PER"], "BIO", policy)[1]


def test_make_decoded_confidence_of_final_tags():
    labels = ["O", "B-PER", "I-PER"]
    probabilities = torch.tensor([[0.1, 0.2, 0.7], [0.2, 0.1, 0.7], [0.9, 0.05, 0.05]])
    decoded = make_decoded(["I-PER", "I-PER", "O"], probabilities, {l: i for i, l in enumerate(labels)},
                           "BIO", "retain")
    assert decoded.tags == ["B-PER", "I-PER", "O"] and decoded.raw_illegal
    # the repaired word 0 is scored by its raw tag I-PER (0.7), not by B-PER (0.2)
    assert decoded.token_confidence == pytest.approx([0.7, 0.7, 0.9])
    assert decoded.spans == [("PER", 0, 2, pytest.approx(0.7))]
    discarded = make_decoded(["I-PER", "I-PER", "O"], probabilities, {l: i for i, l in enumerate(labels)},
                             "BIO", "discard")
    assert discarded.tags == ["O", "O", "O"] and discarded.spans == []
    assert discarded.token_confidence == pytest.approx([0.1, 0.2, 0.9])  # P(O): the tag that is output


def test_retain_confidence_of_a_confident_orphan_entity_from_a_real_crf():
    """A plain CRF that strongly prefers O -> I-PER: the repaired B-PER keeps the orphan's confidence."""
    labels = ["O", "B-PER", "I-PER"]
    config = TaggerConfig(encoder="bilstm", labels=labels, scheme="BIO", decoder="crf", **SMALL_LSTM)
    tagger = Tagger.build(config, [Sentence(("x", "y"))])
    with torch.no_grad():
        tagger.crf.transitions.zero_()
        tagger.crf.start_transitions.zero_()
        tagger.crf.end_transitions.zero_()
    emissions = torch.tensor([[[4.0, -4.0, -4.0], [-6.0, -2.0, 6.0]]])  # shape: (1, 2, 3): O, then I-PER
    mask = torch.ones(1, 2, dtype=torch.bool)
    raw = [labels[k] for k in tagger.crf.decode(emissions, mask)[0]]
    marginals = tagger.crf.marginals(emissions, mask)[0]  # shape: (2, 3)
    assert raw == ["O", "I-PER"] and float(marginals[1, 1]) < 0.01 < 0.99 < float(marginals[1, 2])
    decoded = make_decoded(raw, marginals, tagger.label_index, "BIO", "retain")
    assert decoded.tags == ["O", "B-PER"]
    assert decoded.spans == [("PER", 1, 2, pytest.approx(float(marginals[1, 2])))]


# ---------------------------------------------------------------- errors and plumbing


def test_clear_errors(sentences):
    tagger = make_tagger("bilstm", "mcrf")
    with pytest.raises(ValueError, match=r"'B-MISC' at toy:1 is not one of the tagger's labels"):
        tagger.collator()([Sentence(("john",), ("B-MISC",), source="toy:1")])
    with pytest.raises(ValueError, match="needs a gold tag"):
        tagger(tagger.collator()([Sentence(("john",))]))
    with pytest.raises(TypeError, match="Sentence"):
        tagger.predict([("john", "visited")])
    with pytest.raises(ValueError, match="batch_size"):
        tagger.predict(sentences, batch_size=0)
    with pytest.raises(ValueError, match="train_sentences"):
        Tagger.build(TaggerConfig(labels=tm.TOY_LABELS))
    with pytest.raises(ValueError, match="illegal gold"):
        tagger(tagger.collator()([Sentence(("john", "lee"), ("O", "I-PER"))]))


def test_collator_is_picklable_and_tags_padded(bert_dir, sentences):
    for tagger in (make_tagger("bilstm"), make_tagger(bert_dir)):
        collate = pickle.loads(pickle.dumps(tagger.collator()))
        batch = collate(sentences[:3] + [Sentence(("john",))])
        assert batch["tags"].dtype == torch.long and batch["word_mask"].dtype == torch.bool
        assert (batch["tags"][~batch["word_mask"]] == -100).all()
        assert (batch["tags"][3] == -100).all()
        assert tagger.emissions(batch).dtype == torch.float32


def test_hf_long_sentence_gets_one_tag_per_word(bert_dir):
    tagger = make_tagger(bert_dir, "mcrf")
    words = tuple(random.Random(1).choice(tm.FILLER + tm.PLACES) for _ in range(300)) + ("johnssssssssssssssssss",)
    prediction = tagger.predict([Sentence(words)])[0]
    assert len(prediction.tags) == len(words) == len(prediction.token_confidence)
    assert schemes.is_legal(prediction.tags, "BIO")


def test_max_length_beyond_position_embeddings_is_rejected(tmp_path):
    small = tm.make_bert_dir(tmp_path / "small", max_positions=32)
    with pytest.raises(ValueError, match="max_position_embeddings=32"):
        make_tagger(small, encoder_options=dict(max_length=64))


def test_encoder_decoder_models_are_rejected():
    from transformers import T5Config

    from mcrf.models.encoders.hf import encoder_from_config

    config = T5Config(d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8, vocab_size=50).to_dict()
    with pytest.raises(ValueError, match="encoder-decoder"):
        encoder_from_config(config)
    with pytest.raises(ValueError, match="model_type"):
        encoder_from_config({"hidden_size": 8})
