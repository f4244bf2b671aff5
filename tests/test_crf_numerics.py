"""Properties (hypothesis), gradients, low precision, torch.compile and torch.export."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcrf import MaskedCRF
from mcrf.crf.schemes import is_legal, scheme_labels


@pytest.fixture(autouse=True, params=["scan", "sequential"])
def algorithm(request, monkeypatch):
    """Every test here runs with both algorithms (the layer's default ``"auto"`` is overridden)."""
    monkeypatch.setitem(MaskedCRF.__init__.__kwdefaults__, "algorithm", request.param)
    return request.param


def _crf(scheme: str, types=("PER", "LOC"), mode="mcrf", batch_first=True) -> MaskedCRF:
    labels = scheme_labels(types, scheme)
    return MaskedCRF(len(labels), batch_first=batch_first, labels=labels, scheme=scheme, mode=mode)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    scheme=st.sampled_from(["BIO", "IOB1", "BIOES", "BILOU", "IOE1", "IOE2"]),
    seed=st.integers(0, 2**31 - 1),
    scale=st.sampled_from([0.1, 3.0, 30.0]),
    steps=st.integers(1, 12),
    k=st.integers(1, 4),
)
def test_decoded_paths_are_always_legal(scheme, seed, scale, steps, k):
    """Adversarial scores: large transitions rewarding illegal moves, large emissions."""
    gen = torch.Generator().manual_seed(seed)
    crf = _crf(scheme)
    with torch.no_grad():
        crf.transitions.copy_(torch.randn(crf.transitions.shape, generator=gen) * scale)
        crf.transitions[~crf.allowed_transitions] = 10 * scale  # reward every forbidden move
        crf.start_transitions[~crf.allowed_start] = 10 * scale
    emissions = torch.randn(3, steps, crf.num_tags, generator=gen) * scale
    mask = torch.rand(3, steps, generator=gen) > 0.3
    paths, scores = crf.viterbi(emissions, mask, k=k)
    for b in range(3):
        for r in range(k):
            if math.isfinite(scores[b, r].item()):
                tags = [crf.labels[t] for t in paths[b, r][mask[b]].tolist()]
                assert is_legal(tags, scheme), tags
    for b, path in enumerate(crf.decode(emissions, mask)):
        assert is_legal([crf.labels[t] for t in path], scheme)
    marg = crf.marginals(emissions, mask)
    assert torch.isfinite(marg).all()
    torch.testing.assert_close(marg.sum(-1), mask.float(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mode", ["mcrf", "crf"])
def test_gradcheck_float64(mode):
    torch.manual_seed(0)
    crf = _crf("BIOES", types=("X",), mode=mode).double()
    emissions = torch.randn(3, 5, crf.num_tags, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 1, 0, 1, 1], [1, 1, 0, 0, 0]], dtype=torch.bool)
    tags = crf.viterbi(emissions.detach() + torch.randn_like(emissions), mask)[0][:, 0].clamp(min=0)
    params = (crf.start_transitions, crf.transitions, crf.end_transitions)

    def f(em, start, trans, end):
        with torch.no_grad():
            crf.start_transitions.copy_(start)
            crf.transitions.copy_(trans)
            crf.end_transitions.copy_(end)
        return crf(em, tags, mask, reduction="none")

    assert torch.autograd.gradcheck(lambda em: crf(em, tags, mask, reduction="none"), (emissions,))
    # parameter gradients against finite differences of the log-likelihood
    llh = crf(emissions, tags, mask, reduction="sum")
    grads = torch.autograd.grad(llh, params)
    for p, g in zip(params, grads):
        flat = p.detach().view(-1)
        for i in range(0, flat.numel(), max(1, flat.numel() // 7)):
            old = flat[i].item()
            with torch.no_grad():
                flat[i] = old + 1e-6
                up = crf(emissions, tags, mask, reduction="sum").item()
                flat[i] = old - 1e-6
                down = crf(emissions, tags, mask, reduction="sum").item()
                flat[i] = old
            assert g.view(-1)[i].item() == pytest.approx((up - down) / 2e-6, abs=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_emissions_give_finite_float32_loss_and_grads(dtype):
    crf = _crf("BIO")
    emissions = (torch.randn(4, 20, crf.num_tags) * 8).to(dtype).requires_grad_(True)
    tags = crf.viterbi(emissions.float())[0][:, 0]
    loss = crf.loss(emissions, tags)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert emissions.grad.dtype == dtype and torch.isfinite(emissions.grad).all()
    assert torch.isfinite(crf.transitions.grad).all()


def test_autocast_runs_the_crf_in_float32():
    crf = _crf("BIOES")
    linear = torch.nn.Linear(8, crf.num_tags)
    x = torch.randn(2, 6, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        emissions = linear(x)
        assert emissions.dtype == torch.bfloat16
        tags = crf.viterbi(emissions)[0][:, 0]
        loss = crf.loss(emissions, tags)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(linear.weight.grad).all()


def test_large_emissions_keep_loss_finite():
    crf = _crf("BIO")
    emissions = torch.randn(2, 30, crf.num_tags) * 60
    emissions.requires_grad_(True)
    tags = crf.viterbi(emissions.detach())[0][:, 0]
    loss = crf.loss(emissions, tags)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() >= -1e-3
    assert torch.isfinite(emissions.grad).all() and torch.isfinite(crf.transitions.grad).all()


def test_torch_compile_runs_forward_and_decoding():
    crf = _crf("BIO", types=("X",))
    emissions = torch.randn(2, 5, crf.num_tags)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    tags = crf.viterbi(emissions, mask)[0][:, 0].clamp(min=0)
    compiled_loss = torch.compile(lambda e, t, m: crf.loss(e, t, m), backend="eager", fullgraph=False)
    compiled_viterbi = torch.compile(lambda e, m: crf.viterbi(e, m), backend="eager")
    torch.testing.assert_close(compiled_loss(emissions, tags, mask), crf.loss(emissions, tags, mask))
    paths, scores = compiled_viterbi(emissions, mask)
    expected_paths, expected_scores = crf.viterbi(emissions, mask)
    assert torch.equal(paths, expected_paths)
    torch.testing.assert_close(scores, expected_scores)


def test_torch_export_captures_viterbi():
    crf = _crf("BIOES", types=("X",))

    class Decoder(torch.nn.Module):
        def __init__(self, layer: MaskedCRF):
            super().__init__()
            self.layer = layer

        def forward(self, emissions, mask):
            return self.layer.viterbi(emissions, mask)

    emissions = torch.randn(2, 6, crf.num_tags)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 0, 0]], dtype=torch.bool)
    program = torch.export.export(Decoder(crf), (emissions, mask))
    other = torch.randn(2, 6, crf.num_tags)
    other_mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    paths, scores = program.module()(other, other_mask)
    expected_paths, expected_scores = crf.viterbi(other, other_mask)
    assert torch.equal(paths, expected_paths)
    torch.testing.assert_close(scores, expected_scores)


@pytest.mark.parametrize("scale", [1.0, 200.0])
def test_fast_partition_equals_exact_recursion_at_any_scale(scale, algorithm):
    """Rows whose scores exceed the exp-space range are recomputed exactly, never NaN."""
    from mcrf.crf import exact as crf_exact, ops as crf_ops

    crf = _crf("BIOES")
    gen = torch.Generator().manual_seed(5)
    emissions = (torch.randn(4, 9, crf.num_tags, generator=gen) * scale).requires_grad_(True)
    lengths = torch.tensor([9, 4, 1, 0])
    chain = crf_ops.Chain(crf.start_transitions, crf.transitions, crf.end_transitions,
                          crf.allowed_start, crf.allowed_transitions, crf.allowed_end)
    scan = algorithm == "scan"
    fast = crf_ops.log_partition(emissions, lengths, chain, scan=scan)
    exact = crf_exact.log_partition(emissions, lengths, chain)
    torch.testing.assert_close(fast, exact, atol=1e-3 * scale, rtol=1e-5)
    (g_fast,) = torch.autograd.grad(fast.sum(), emissions)
    (g_exact,) = torch.autograd.grad(exact.sum(), emissions)
    torch.testing.assert_close(g_fast, g_exact, atol=1e-4, rtol=1e-3)
    marg = crf_ops.marginals(emissions.detach(), lengths, chain, scan=scan)
    torch.testing.assert_close(marg, g_exact, atol=1e-4, rtol=1e-3)
    for sync_free in (True, False):  # the fallback selected by torch.where gives the same numbers
        torch.testing.assert_close(crf_ops.log_partition(emissions, lengths, chain, sync_free, scan), exact,
                                   atol=1e-3 * scale, rtol=1e-5)


def test_marginals_beyond_the_fast_range_work_under_inference_mode():
    crf = _crf("BIO")
    emissions = torch.randn(2, 7, crf.num_tags) * 300
    with torch.inference_mode():
        marg = crf.marginals(emissions)
    assert torch.isfinite(marg).all()
    # float32 at score magnitudes ~2000: exponents carry ~2e-4 absolute error
    torch.testing.assert_close(marg.sum(-1), torch.ones(2, 7), atol=2e-3, rtol=0)
    best = crf.viterbi(emissions)[0][:, 0]
    assert (marg.argmax(-1) == best).float().mean() > 0.9  # at this scale the posterior is peaked


def test_marginals_are_probabilities_at_large_scales():
    crf = _crf("BIOES")
    marg = crf.marginals(torch.randn(3, 12, crf.num_tags) * 170)
    assert (marg >= 0).all() and (marg <= 1).all()


@pytest.mark.slow
def test_torch_compile_with_inductor_runs_forward_backward_and_decoding():
    """The default backend (needs a C++ compiler; ~45 s of compilation on 2 CPU cores)."""
    crf = _crf("BIO", types=("X",))
    emissions = torch.randn(2, 5, crf.num_tags, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    tags = crf.viterbi(emissions.detach(), mask)[0][:, 0].clamp(min=0)
    loss = torch.compile(lambda e, t, m: crf.loss(e, t, m))(emissions, tags, mask)
    torch.testing.assert_close(loss, crf.loss(emissions, tags, mask))
    (grad,) = torch.autograd.grad(loss, emissions)
    (expected,) = torch.autograd.grad(crf.loss(emissions, tags, mask), emissions)
    torch.testing.assert_close(grad, expected)
    paths, _ = torch.compile(lambda e, m: crf.viterbi(e, m))(emissions.detach(), mask)
    assert torch.equal(paths, crf.viterbi(emissions.detach(), mask)[0])
