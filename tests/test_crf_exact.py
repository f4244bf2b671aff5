"""The exact log-space forward-backward (``mcrf.crf.exact``): what ``validate=False`` and the scan run.

Exact against the brute-force oracle and float64 ``gradcheck`` (both algorithms), exact at any
score scale without a fallback, computed once per call (never the fast scan plus a recompute),
and free of host reads and host-to-device copies.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from crf_oracle import log_z as oracle_log_z, marginals as oracle_marginals
from mcrf import MaskedCRF
from mcrf.crf import exact as crf_exact, ops as crf_ops, schemes
from sync_count import SyncCounter

ALGORITHMS = [False, True]  # scan?


def _crf(scheme: str = "BIO", types=("PER", "LOC"), dtype=torch.float32, seed: int = 0) -> MaskedCRF:
    torch.manual_seed(seed)
    labels = schemes.scheme_labels(list(types), scheme)
    crf = MaskedCRF(len(labels), batch_first=True, labels=labels, scheme=scheme).to(dtype)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_(0, 1)
    return crf


def _chain(crf: MaskedCRF) -> crf_ops.Chain:
    return crf._chain(train=True, dtype=crf.transitions.dtype)


@pytest.mark.parametrize("scan", ALGORITHMS)
def test_log_z_and_marginals_equal_the_brute_force_oracle(scan):
    crf = _crf("BIOES", types=("X",))
    emissions = torch.randn(4, 4, crf.num_tags)
    lengths = torch.tensor([4, 3, 1, 0])
    log_z = crf_exact.log_partition(emissions, lengths, _chain(crf), scan=scan)
    marg = crf_exact.marginals(emissions, lengths, _chain(crf), scan=scan)
    for b in range(4):
        n = int(lengths[b])
        assert log_z[b].item() == pytest.approx(oracle_log_z(crf, emissions[b, :n]), abs=1e-4)
        if n:
            torch.testing.assert_close(marg[b, :n].double(), oracle_marginals(crf, emissions[b, :n]), atol=1e-5, rtol=0)
        assert not marg[b, n:].any()


@pytest.mark.parametrize("scan", ALGORITHMS)
def test_gradcheck_float64_for_emissions_and_every_chain_score(scan):
    crf = _crf("BIO", dtype=torch.float64)
    lengths = torch.tensor([5, 3, 1, 0])
    emissions = torch.randn(4, 5, crf.num_tags, dtype=torch.float64, requires_grad=True)
    rules = (crf.allowed_start, crf.allowed_transitions, crf.allowed_end)
    scores = tuple(p.detach().clone().requires_grad_(True) for p in
                   (crf.start_transitions, crf.transitions, crf.end_transitions))

    def f(em, start, trans, end):
        return crf_exact.log_partition(em, lengths, crf_ops.Chain(start, trans, end, *rules), scan=scan)

    assert torch.autograd.gradcheck(f, (emissions, *scores))


@pytest.mark.parametrize("scan", ALGORITHMS)
@pytest.mark.parametrize("scale", [1.0, 400.0])
def test_float32_is_exact_at_any_scale_without_a_fallback(scan, scale):
    """At scale 400 the fast exp-space scan would flag every row; the log-space recursion needs no flag."""
    crf = _crf("BIOES", types=("A", "B"))
    gen = torch.Generator().manual_seed(3)
    emissions = torch.randn(3, 12, crf.num_tags, generator=gen) * scale
    lengths = torch.tensor([12, 7, 1])
    em32 = emissions.clone().requires_grad_(True)
    em64 = emissions.double().requires_grad_(True)
    crf64 = _crf("BIOES", types=("A", "B"), dtype=torch.float64)
    crf64.load_state_dict(crf.state_dict())
    z32 = crf_exact.log_partition(em32, lengths, _chain(crf), scan=scan)
    z64 = crf_exact.log_partition(em64, lengths, _chain(crf64), scan=scan)
    torch.testing.assert_close(z32.double(), z64, atol=1e-5 * scale * 12, rtol=1e-6)
    (g32,) = torch.autograd.grad(z32.sum(), em32)
    (g64,) = torch.autograd.grad(z64.sum(), em64)
    assert torch.isfinite(g32).all()
    torch.testing.assert_close(g32.double(), g64, atol=2e-3, rtol=0)
    torch.testing.assert_close(g32.sum(-1)[0], torch.ones(12), atol=1e-3, rtol=0)  # marginals sum to 1


@pytest.mark.parametrize("scan", ALGORITHMS)
def test_validate_false_runs_the_exact_recursion_once_and_nothing_else(scan, monkeypatch):
    """Before: the fast scan ran, then the exact recursion on every row for a torch.where."""
    crf = _crf("BIO")
    crf.algorithm = "scan" if scan else "sequential"
    calls = []
    real = crf_exact.scores
    monkeypatch.setattr(crf_exact, "scores", lambda *a, **k: calls.append("exact") or real(*a, **k))
    monkeypatch.setattr(crf_ops._LogPartition, "apply", lambda *a: calls.append("fast") or 1 / 0)
    monkeypatch.setattr(crf_ops, "_both_scans", lambda *a, **k: calls.append("fast") or 1 / 0)
    emissions = torch.randn(3, 6, crf.num_tags, requires_grad=True)
    tags = crf.viterbi(emissions.detach())[0][:, 0]
    crf.loss(emissions, tags, validate=False).backward()
    assert calls == ["exact"]
    crf.marginals(emissions.detach(), validate=False)
    assert calls == ["exact", "exact"]


@pytest.mark.parametrize("scan", ALGORITHMS)
def test_validate_false_reads_nothing_and_copies_nothing_to_the_device(scan):
    """``SyncCounter`` also sees scalar-tensor copies (``torch.tensor(x, device=...)``): none here."""
    crf = _crf("BIO")
    crf.algorithm = "scan" if scan else "sequential"
    emissions = torch.randn(3, 6, crf.num_tags, requires_grad=True)
    tags = crf.viterbi(emissions.detach())[0][:, 0]
    mask = torch.ones(3, 6, dtype=torch.bool)
    with SyncCounter() as syncs:
        crf.loss(emissions, tags, mask, validate=False).backward()
        crf.viterbi(emissions.detach(), mask, validate=False)
        crf.marginals(emissions.detach(), mask, validate=False)
    assert syncs.count == 0, list(zip(syncs.ops, syncs.where))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), scheme=st.sampled_from(["BIO", "BIOES", "IOB1"]),
       scale=st.sampled_from([0.1, 1.0, 30.0, 300.0]), steps=st.integers(1, 9), scan=st.booleans())
def test_property_float32_matches_float64_and_marginals_are_distributions(seed, scheme, scale, steps, scan):
    crf = _crf(scheme, seed=seed % 7)
    gen = torch.Generator().manual_seed(seed)
    emissions = torch.randn(3, steps, crf.num_tags, generator=gen) * scale
    lengths = torch.randint(0, steps + 1, (3,), generator=gen)
    crf64 = _crf(scheme, dtype=torch.float64)
    crf64.load_state_dict(crf.state_dict())
    z32 = crf_exact.log_partition(emissions, lengths, _chain(crf), scan=scan)
    z64 = crf_exact.log_partition(emissions.double(), lengths, _chain(crf64), scan=scan)
    assert torch.isfinite(z32).all()
    torch.testing.assert_close(z32.double(), z64, atol=2e-6 * scale * steps + 1e-5, rtol=1e-6)
    marg = crf_exact.marginals(emissions, lengths, _chain(crf), scan=scan)
    valid = torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)
    torch.testing.assert_close(marg.sum(-1)[valid], torch.ones(int(valid.sum())), atol=2e-3, rtol=0)
    assert not marg[~valid].any()
    # forbidden tags get exactly zero probability
    start_forbidden = ~crf.allowed_start
    assert not marg[:, 0][(lengths > 0)][:, start_forbidden].any()


def test_no_legal_path_gives_minus_infinity_and_zero_gradient():
    start = torch.tensor([False, True])
    trans = torch.tensor([[True, False], [False, False]])  # tag 1 may start but never continue
    end = torch.tensor([True, False])  # and may not end
    scores = (torch.zeros(2, requires_grad=True), torch.zeros(2, 2, requires_grad=True), torch.zeros(2, requires_grad=True))
    emissions = torch.zeros(1, 3, 2, requires_grad=True)
    for scan in ALGORITHMS:
        log_z = crf_exact.log_partition(emissions, torch.tensor([3]), crf_ops.Chain(*scores, start, trans, end), scan)
        assert log_z.item() == -math.inf
        (grad,) = torch.autograd.grad(log_z.sum(), emissions)
        assert torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize("algorithm", ["sequential", "scan"])
@pytest.mark.parametrize("k", [1, 2])
def test_decode_finds_the_legal_best_path_at_scores_near_the_float32_limit(algorithm, k):
    """Issue 17: emissions of +-5e37 overflowed the float32 path sums and decode said "no legal tag path"."""
    labels = schemes.scheme_labels(["PER", "LOC"], "BIO")
    crf = MaskedCRF(len(labels), batch_first=True, labels=labels, algorithm=algorithm)
    gen = torch.Generator().manual_seed(0)
    emissions = torch.randn(3, 8, crf.num_tags, generator=gen) * 5e37
    reference = MaskedCRF(len(labels), batch_first=True, labels=labels).double()  # float64: no overflow
    reference.load_state_dict(crf.state_dict())
    for validate in (True, False):
        paths = crf.decode(emissions, validate=validate)
        assert paths == reference.decode(emissions.double())
        assert all(schemes.is_legal([labels[t] for t in path], "BIO") for path in paths)
        best, scores = crf.viterbi(emissions, k=k, validate=validate)
        assert torch.equal(best, reference.viterbi(emissions.double(), k=k)[0])
        assert torch.isfinite(scores).all()  # legal paths; a score beyond float32 saturates, never "no path"
    ordinary = torch.randn(3, 8, crf.num_tags, generator=gen)
    assert crf.decode(ordinary) == reference.decode(ordinary.double())
