"""One training step reads nothing back from the device in mcrf's code (issue 13, part 2).

Counted with ``tests/sync_count.SyncCounter`` on CPU (every host read of a tensor value goes
through the dispatcher the same way on a GPU). What remains is outside mcrf and is asserted
exactly, so a new read anywhere shows up here:

* tiny BERT: one read in transformers (``masking_utils``: ``padding_mask.all()`` decides whether
  SDPA may skip the attention mask).
* BiLSTM: two reads of ``batch_sizes`` inside ``torch.nn.LSTM`` on a packed sequence and one
  ``.cpu()`` in ``torch.nn.utils.rnn``; those tensors live on the host by design, so they cost no
  synchronisation. The packing itself needs the lengths on the host (``lengths.cpu()`` in
  ``encoders/bilstm.py``): one device->host copy on a GPU, the one host copy in mcrf's code
  during a BiLSTM step (the counter sees ``.cpu()`` since issue 19).
"""

from __future__ import annotations

import pytest
import torch

import tiny_models as tm
from mcrf.models import Tagger, TaggerConfig
from sync_count import SyncCounter
from tiny_models import one_torch_thread  # noqa: F401  (autouse fixture)

SMALL_LSTM = dict(encoder_options=dict(word_dim=16, char_dim=8, char_filters=8, lstm_hidden=16))


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return tm.make_bert_dir(tmp_path_factory.mktemp("bert"))


def _tagger(encoder, decoder="mcrf") -> Tagger:
    torch.manual_seed(0)
    extra = SMALL_LSTM if encoder == "bilstm" else dict(encoder_options=dict(max_length=16, stride=4))
    config = TaggerConfig(encoder=str(encoder), labels=tm.TOY_LABELS, decoder=decoder, **extra)
    return Tagger.build(config, tm.toy_sentences(20, seed=0))


def _step_reads(tagger: Tagger, batch, validate: bool) -> SyncCounter:
    with SyncCounter() as reads:
        tagger(batch, validate=validate).backward()
    return reads


@pytest.mark.parametrize("decoder", ["mcrf", "crf", "softmax"])
def test_bilstm_training_step_reads_only_the_packed_batch_sizes(decoder):
    tagger = _tagger("bilstm", decoder)
    batch = tagger.collator()(tm.toy_sentences(6, seed=1))
    tagger(batch, validate=False)  # warm-up
    reads = _step_reads(tagger, batch, validate=False)
    seen = [(op, where.split(":")[0]) for op, where in zip(reads.ops, reads.where)]
    assert seen == [("cpu", "bilstm.py"), ("aten._local_scalar_dense", "rnn.py"),
                    ("aten._local_scalar_dense", "rnn.py"), ("cpu", "rnn.py")], seen
    assert _step_reads(tagger, batch, validate=True).count > reads.count  # today's checks, by default


def test_bert_training_step_reads_only_transformers_mask_check(bert_dir):
    tagger = _tagger(bert_dir)
    batch = tagger.collator()(tm.toy_sentences(6, seed=1))
    tagger(batch, validate=False)
    reads = _step_reads(tagger, batch, validate=False)
    # transformers' own attention-mask check, the one read left: once in 5.x (masking_utils.py), twice in the
    # 4.x that setup.cfg also allows (modeling_attn_mask_utils.py); none of mcrf's
    mask_check = ("masking_utils.py:", "modeling_attn_mask_utils.py:")
    assert 1 <= reads.count <= 2 and all(where.startswith(mask_check) for where in reads.where), reads.where
    assert _step_reads(tagger, batch, validate=True).count > reads.count


@pytest.mark.parametrize("decoder", ["mcrf", "softmax"])
def test_unchecked_loss_equals_the_checked_one_with_empty_sentences(decoder):
    from mcrf.data.types import Sentence

    tagger = _tagger("bilstm", decoder)
    sentences = tm.toy_sentences(4, seed=2)
    sentences.insert(1, Sentence(tokens=(), tags=()))  # an empty sentence carries no likelihood
    batch = tagger.collator()(sentences)
    tagger.eval()
    checked, unchecked = tagger(batch), tagger(batch, validate=False)
    torch.testing.assert_close(unchecked, checked)
    without_empty = tagger(tagger.collator()(sentences[:1] + sentences[2:]))
    torch.testing.assert_close(checked, without_empty)
    empty = tagger.collator()([Sentence(tokens=(), tags=())])
    assert tagger(empty, validate=False).item() == 0.0


def test_missing_gold_tags_are_still_refused_by_default():
    from mcrf.errors import DataError

    tagger = _tagger("bilstm")
    batch = tagger.collator(with_tags=False)(tm.toy_sentences(2, seed=3))
    with pytest.raises(DataError, match="needs a gold tag for every word"):
        tagger(batch)


def test_prediction_skips_the_crf_checks_and_gives_the_same_tags():
    tagger = _tagger("bilstm")
    sentences = tm.toy_sentences(5, seed=4)
    batch = tagger.collator(with_tags=False)(sentences)
    tagger.eval()
    assert [d.tags for d in tagger.decode(batch, validate=False)] == [d.tags for d in tagger.decode(batch)]
    with torch.no_grad():
        tagger.crf.transitions[0, 0] = float("nan")
    with pytest.raises(ValueError, match="CRF parameter transitions holds non-finite values"):
        tagger.predict(sentences)


def test_the_counter_attributes_reads_to_the_package_from_a_folder_named_mcrf(tmp_path):
    """``git clone`` of this repository gives a folder named ``mcrf``: a read in mcrf's code must
    still be attributed to mcrf's file, not to the counter or torch (whose paths then contain ``/mcrf/``)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    clone = tmp_path / "mcrf"
    shutil.copytree(here.parent / "mcrf", clone / "mcrf", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(here / "sync_count.py", clone / "sync_count.py")
    code = ("import torch, sync_count\nfrom mcrf import MaskedCRF\n"
            "crf = MaskedCRF(3, batch_first=True)\n"
            "with sync_count.SyncCounter() as reads:\n"
            "    crf.decode(torch.randn(2, 4, 3))\n"
            "print(reads.where)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=clone, capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(clone)})
    assert out.returncode == 0, out.stderr
    where = eval(out.stdout.strip().splitlines()[-1])
    assert where and all(not w.startswith(("sync_count.py", "?")) for w in where), where


@pytest.mark.parametrize("decoder", ["mcrf", "crf", "softmax"])
def test_decoding_a_batch_copies_to_the_host_once(decoder):
    """Issue 19 item 5: paths, confidences and lengths come back in one copy (before: four)."""
    from mcrf.data.types import Sentence

    tagger = _tagger("bilstm", decoder)
    tagger.eval()
    sentences = tm.toy_sentences(5, seed=4)
    sentences.insert(2, Sentence(tokens=()))
    batch = tagger.collator(with_tags=False)(sentences)
    with torch.inference_mode(), SyncCounter() as syncs:
        decoded = tagger.decode(batch, validate=False)
    outside_encoder = [op for op, where in zip(syncs.ops, syncs.where) if not where.startswith(("bilstm.py", "rnn.py"))]
    assert outside_encoder == ["tolist"], list(zip(syncs.ops, syncs.where))
    assert decoded[2].tags == [] and all(len(d.tags) == len(s.tokens) for d, s in zip(decoded, sentences))


@pytest.mark.parametrize("rule", ["retain", "discard"])
@pytest.mark.parametrize("decoder", ["crf", "softmax"])
def test_batched_decoding_equals_the_per_sentence_assembly(decoder, rule):
    """The one-copy path gives what ``make_decoded`` gives from each sentence's full probabilities."""
    from mcrf.models.decoding import make_decoded

    tagger = _tagger("bilstm", decoder)
    tagger.config.postprocess = rule
    tagger.eval()
    torch.manual_seed(3)
    with torch.no_grad():
        tagger.head.weight.normal_(0, 3)  # noisy scores: illegal raw output to repair
    sentences = tm.toy_sentences(8, seed=5)
    batch = tagger.collator(with_tags=False)(sentences)
    with torch.inference_mode():
        decoded = tagger.decode(batch)
        emissions, mask = tagger.emissions(batch), batch["word_mask"]
        if tagger.crf is not None:
            paths, probabilities = tagger.crf.decode(emissions, mask), tagger.crf.marginals(emissions, mask)
        else:
            probabilities = emissions.softmax(-1)
            paths = [probabilities[b][mask[b]].argmax(-1).tolist() for b in range(len(sentences))]
    assert any(d.raw_illegal for d in decoded)
    for b, d in enumerate(decoded):
        raw = [tagger.config.labels[k] for k in paths[b]]
        expected = make_decoded(raw, probabilities[b][mask[b]], tagger.label_index, tagger.config.scheme, rule)
        assert d.tags == expected.tags and d.raw_illegal == expected.raw_illegal
        assert d.token_confidence == pytest.approx(expected.token_confidence, abs=1e-6)
        assert [s[:3] for s in d.spans] == [s[:3] for s in expected.spans]
