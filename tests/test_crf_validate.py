"""``validate=False``: no host synchronisation; CRF parameter checks; empty batches and sequences."""

from __future__ import annotations

import math

import pytest
import torch

from mcrf import MaskedCRF
from mcrf.crf.schemes import scheme_labels

from sync_count import SyncCounter

LABELS = scheme_labels(["PER", "LOC"], "BIO")
MASK = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 0, 0], [1, 0, 1, 1, 0, 1]], dtype=torch.bool)


@pytest.fixture(autouse=True, params=["scan", "sequential"])
def algorithm(request, monkeypatch):
    """Every test here runs with both algorithms (the layer's default ``"auto"`` is overridden)."""
    monkeypatch.setitem(MaskedCRF.__init__.__kwdefaults__, "algorithm", request.param)
    return request.param


def _crf(validate: bool = True, **kwargs) -> MaskedCRF:
    torch.manual_seed(0)
    crf = MaskedCRF(len(LABELS), batch_first=True, labels=LABELS, validate=validate, **kwargs)
    with torch.no_grad():
        crf.transitions.normal_(0, 1)
    return crf


def _data(crf: MaskedCRF):
    emissions = torch.randn(3, 6, crf.num_tags, requires_grad=True)
    tags = crf.viterbi(emissions.detach() + torch.randn(3, 6, crf.num_tags), MASK)[0][:, 0].clamp(min=0)
    return emissions, tags


def test_validate_true_counts_todays_syncs_and_false_counts_none():
    checked, fast = _crf(True), _crf(False)
    emissions, tags = _data(checked)
    for crf, expect_zero in ((checked, False), (fast, True)):
        with SyncCounter() as loss_syncs:
            crf.loss(emissions, tags, MASK).backward()
        with SyncCounter() as infer_syncs:
            crf.viterbi(emissions, MASK, k=2)
            crf.marginals(emissions, MASK)
            crf.decode(emissions, MASK)  # its one read: the result, by one tolist
        if expect_zero:
            assert loss_syncs.ops == [] and infer_syncs.ops == ["tolist"]
        else:
            assert loss_syncs.count > 0 and infer_syncs.count > 0


def test_a_call_can_override_the_layer_setting():
    checked, fast = _crf(True), _crf(False)
    emissions, tags = _data(checked)
    with SyncCounter() as syncs:
        checked.loss(emissions, tags, MASK, validate=False).backward()
        checked.viterbi(emissions, MASK, validate=False)
        checked.marginals(emissions, MASK, validate=False)
    assert syncs.ops == []
    bad = tags.clone()
    bad[0, 0] = 99
    with pytest.raises(ValueError, match="tags must be in"):
        fast(emissions, bad, MASK, validate=True)
    with pytest.raises(ValueError, match="NaN"):
        fast.decode(torch.full((1, 2, fast.num_tags), float("nan")), validate=True)


@pytest.mark.parametrize("scale", [1.0, 300.0])
def test_validate_false_gives_the_same_numbers_at_any_scale(scale):
    """The range-safety recompute is selected with torch.where: exact without a host read."""
    checked, fast = _crf(True), _crf(False)
    emissions, tags = _data(checked)
    big = (emissions.detach() * scale).requires_grad_(True)
    big_fast = big.detach().clone().requires_grad_(True)
    llh = checked(big, tags, MASK, reduction="none")
    with SyncCounter() as syncs:
        llh_fast = fast(big_fast, tags, MASK, reduction="none")
        llh_fast.sum().backward()
    assert syncs.ops == []
    torch.testing.assert_close(llh_fast, llh, atol=1e-4 * scale, rtol=1e-5)
    llh.sum().backward()
    torch.testing.assert_close(big_fast.grad, big.grad, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(fast.marginals(big, MASK), checked.marginals(big, MASK), atol=1e-4, rtol=1e-3)
    assert torch.equal(fast.viterbi(big, MASK, k=3)[0], checked.viterbi(big, MASK, k=3)[0])


def test_validate_false_scores_an_illegal_gold_sequence_minus_infinity():
    fast = _crf(False)
    emissions, tags = _data(fast)
    tags[1] = torch.tensor([0, 0, 4, 4, 0, 0])  # O -> I-PER at position 2 (unmasked)
    llh = fast(emissions, tags, MASK, reduction="none")
    assert llh[1].item() == float("-inf") and torch.isfinite(llh[[0, 2]]).all()
    with pytest.raises(ValueError, match="illegal gold tag sequence at batch index 1"):
        _crf(True)(emissions, tags, MASK)


@pytest.mark.parametrize("name", ["start_transitions", "transitions", "end_transitions"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_parameters_are_named(name, bad):
    crf = _crf(True)
    emissions, tags = _data(crf)
    with torch.no_grad():
        getattr(crf, name).view(-1)[1] = bad
    for call in (lambda: crf(emissions, tags, MASK), lambda: crf.decode(emissions, MASK),
                 lambda: crf.viterbi(emissions, MASK), lambda: crf.marginals(emissions, MASK),
                 crf.check_parameters):
        with pytest.raises(ValueError, match=f"CRF parameter {name} holds non-finite values"):
            call()
    # a broken state_dict is caught the same way
    other = _crf(True)
    other.load_state_dict(crf.state_dict())
    with pytest.raises(ValueError, match=name):
        other.check_parameters()
    _crf(True).check_parameters()  # healthy parameters pass


@pytest.mark.parametrize("validate", [True, False])
def test_empty_time_axis_gives_empty_results(validate):
    crf = _crf(validate)
    emissions = torch.randn(2, 0, crf.num_tags, requires_grad=True)
    tags = torch.zeros(2, 0, dtype=torch.long)
    for reduction, expected in (("none", torch.zeros(2)), ("sum", 0.0), ("mean", 0.0), ("token_mean", 0.0)):
        out = crf(emissions, tags, reduction=reduction)
        torch.testing.assert_close(out, torch.as_tensor(expected))
    crf.loss(emissions, tags).backward()
    assert crf.decode(emissions) == [[], []]
    paths, scores = crf.viterbi(emissions, k=2)
    assert paths.shape == (2, 2, 0) and scores.tolist() == [[0.0, -math.inf]] * 2
    assert crf.marginals(emissions).shape == (2, 0, crf.num_tags)
    seq_first = MaskedCRF(3, validate=validate)
    assert seq_first.decode(torch.randn(0, 4, 3)) == [[]] * 4
    assert seq_first.viterbi(torch.randn(0, 4, 3))[0].shape == (0, 4, 1)


@pytest.mark.parametrize("validate", [True, False])
def test_empty_batch_gives_zero_loss_for_every_reduction(validate):
    crf = _crf(validate)
    emissions = torch.randn(0, 5, crf.num_tags, requires_grad=True)
    tags = torch.zeros(0, 5, dtype=torch.long)
    assert crf(emissions, tags, reduction="none").shape == (0,)
    for reduction in ("sum", "mean", "token_mean"):
        out = crf(emissions, tags, reduction=reduction)
        assert out.item() == 0.0, reduction  # not NaN: "mean" over no sequences is defined as 0
    crf.loss(emissions, tags).backward()
    assert crf.decode(emissions) == []
    paths, scores = crf.viterbi(emissions, k=3)
    assert paths.shape == (0, 3, 5) and scores.shape == (0, 3)
    assert crf.marginals(emissions).shape == (0, 5, crf.num_tags)


def test_compiled_loss_path_has_no_graph_break():
    crf = _crf(False)
    emissions, tags = _data(crf)
    compiled = torch.compile(lambda e, t, m: crf.loss(e, t, m), backend="eager", fullgraph=True)
    loss = compiled(emissions, tags, MASK)
    torch.testing.assert_close(loss, crf.loss(emissions, tags, MASK))
    (grad,) = torch.autograd.grad(loss, emissions)
    (expected,) = torch.autograd.grad(crf.loss(emissions, tags, MASK), emissions)
    torch.testing.assert_close(grad, expected)
    viterbi = torch.compile(lambda e, m: crf.viterbi(e, m), backend="eager", fullgraph=True)
    assert torch.equal(viterbi(emissions.detach(), MASK)[0], crf.viterbi(emissions.detach(), MASK)[0])
