"""Masks of every kind: a masked position is skipped, the rest runs in order."""

from __future__ import annotations

import pytest
import torch

from mcrf import MaskedCRF
from mcrf.crf.schemes import scheme_labels

MASKS = {
    "right padding": [1, 1, 1, 1, 0, 0],
    "left padding": [0, 0, 1, 1, 1, 1],
    "masked [CLS] and [SEP]": [0, 1, 1, 1, 1, 0],
    "first-subword holes": [1, 0, 1, 1, 0, 1],
    "single token": [0, 0, 0, 1, 0, 0],
}


@pytest.fixture(autouse=True, params=["scan", "sequential"])
def algorithm(request, monkeypatch):
    """Every test here runs with both algorithms (the layer's default ``"auto"`` is overridden)."""
    monkeypatch.setitem(MaskedCRF.__init__.__kwdefaults__, "algorithm", request.param)
    return request.param


@pytest.fixture
def crf() -> MaskedCRF:
    torch.manual_seed(0)
    labels = scheme_labels(["PER", "LOC"], "BIO")
    layer = MaskedCRF(len(labels), batch_first=True, labels=labels)
    with torch.no_grad():
        layer.transitions.normal_(0, 1)
    return layer


def _legal_tags(crf: MaskedCRF, emissions, mask):
    return crf.viterbi(emissions + torch.randn_like(emissions), mask)[0][:, 0]


@pytest.mark.parametrize("name", list(MASKS))
def test_masked_positions_are_skipped(crf, name):
    mask = torch.tensor([MASKS[name]], dtype=torch.bool)
    emissions = torch.randn(1, 6, crf.num_tags)
    tags = _legal_tags(crf, emissions, mask)
    assert (tags[~mask] == -1).all()
    keep = mask[0]
    compact_em, compact_tags = emissions[:, keep], tags[:, keep]
    # the same numbers as running the CRF on the unmasked positions alone
    torch.testing.assert_close(crf(emissions, tags, mask), crf(compact_em, compact_tags))
    assert crf.decode(emissions, mask) == crf.decode(compact_em)
    marg = crf.marginals(emissions, mask)
    torch.testing.assert_close(marg[:, keep], crf.marginals(compact_em))
    assert (marg[:, ~keep] == 0).all()
    paths, _ = crf.viterbi(emissions, mask, k=3)
    compact_paths, _ = crf.viterbi(compact_em, k=3)
    assert torch.equal(paths[:, :, keep], compact_paths)
    assert (paths[:, :, ~keep] == -1).all()


def test_mixed_batch_equals_one_by_one(crf):
    masks = torch.tensor(list(MASKS.values()), dtype=torch.bool)
    emissions = torch.randn(len(masks), 6, crf.num_tags)
    tags = _legal_tags(crf, emissions, masks)
    llh = crf(emissions, tags, masks, reduction="none")
    decoded = crf.decode(emissions, masks)
    for b in range(len(masks)):
        one = crf(emissions[b : b + 1], tags[b : b + 1], masks[b : b + 1], reduction="none")
        torch.testing.assert_close(llh[b : b + 1], one)
        assert decoded[b] == crf.decode(emissions[b : b + 1], masks[b : b + 1])[0]


def test_all_masked_sequence_has_zero_loglik_and_empty_path(crf):
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]], dtype=torch.bool)
    emissions = torch.randn(2, 3, crf.num_tags, requires_grad=True)
    tags = torch.zeros(2, 3, dtype=torch.long)
    llh = crf(emissions, tags, mask, reduction="none")
    assert llh[1].item() == 0.0
    llh.sum().backward()
    assert torch.isfinite(emissions.grad).all() and (emissions.grad[1] == 0).all()
    assert crf.decode(emissions, mask)[1] == []
    paths, scores = crf.viterbi(emissions, mask, k=2)
    assert (paths[1] == -1).all() and scores[1, 0].item() == 0.0
    assert (crf.marginals(emissions, mask)[1] == 0).all()
    assert crf(emissions, tags, mask, reduction="token_mean").isfinite()


def test_tags_at_masked_positions_are_ignored(crf):
    mask = torch.tensor([[0, 1, 1, 0]], dtype=torch.bool)
    emissions = torch.randn(1, 4, crf.num_tags)
    tags = torch.tensor([[-100, 0, 1, 99]])
    clean = torch.tensor([[0, 0, 1, 0]])
    torch.testing.assert_close(crf(emissions, tags, mask), crf(emissions, clean, mask))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.long, torch.int32])
def test_integer_masks_of_zeros_and_ones_work(crf, dtype):
    mask = torch.tensor([[1, 1, 1, 0]], dtype=dtype)  # e.g. a Hugging Face attention_mask
    emissions = torch.randn(1, 4, crf.num_tags)
    tags = torch.tensor([[0, 1, 2, 0]])
    bool_mask = mask.bool()
    torch.testing.assert_close(crf(emissions, tags, mask), crf(emissions, tags, bool_mask))
    assert crf.decode(emissions, mask) == crf.decode(emissions, bool_mask)


def test_sequence_first_layout_with_holes():
    torch.manual_seed(1)
    labels = scheme_labels(["X"], "BIOES")
    seq_first = MaskedCRF(len(labels), labels=labels)
    batch_first = MaskedCRF(len(labels), batch_first=True, labels=labels)
    batch_first.load_state_dict(seq_first.state_dict())
    mask = torch.tensor([[0, 1, 1, 0, 1], [1, 1, 0, 0, 0]], dtype=torch.bool)
    emissions = torch.randn(2, 5, len(labels))
    paths_bf, scores_bf = batch_first.viterbi(emissions, mask, k=2)
    paths_sf, scores_sf = seq_first.viterbi(emissions.transpose(0, 1), mask.t(), k=2)
    assert paths_sf.shape == (5, 2, 2)
    assert torch.equal(paths_sf.permute(1, 2, 0), paths_bf)
    torch.testing.assert_close(scores_sf, scores_bf)
    torch.testing.assert_close(
        seq_first.marginals(emissions.transpose(0, 1), mask.t()).transpose(0, 1),
        batch_first.marginals(emissions, mask),
    )


def test_garbage_at_masked_positions_changes_nothing_and_stays_finite(crf):
    """Padding may hold anything finite (regression: inf * 0 in the backward gave NaN)."""
    mask = torch.tensor([[1] * 20, [1] * 5 + [0] * 15, [0] * 3 + [1] * 4 + [0] * 13], dtype=torch.bool)
    clean = torch.randn(3, 20, crf.num_tags)
    dirty = clean.masked_fill(~mask.unsqueeze(-1), 5e3).requires_grad_(True)
    clean.requires_grad_(True)
    tags = _legal_tags(crf, clean.detach(), mask).clamp(min=0)
    llh_dirty = crf(dirty, tags, mask, reduction="none")
    llh_clean = crf(clean, tags, mask, reduction="none")
    torch.testing.assert_close(llh_dirty, llh_clean)
    llh_dirty.sum().backward()
    llh_clean.sum().backward()
    assert torch.isfinite(dirty.grad).all() and (dirty.grad[~mask] == 0).all()
    torch.testing.assert_close(dirty.grad, clean.grad)
    assert all(torch.isfinite(p.grad).all() for p in crf.parameters())
    torch.testing.assert_close(crf.marginals(dirty, mask), crf.marginals(clean, mask))
