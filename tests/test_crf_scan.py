"""The log-depth scan against the sequential algorithms: same paths (ties included), same numbers."""

from __future__ import annotations

import pytest
import torch

from mcrf import MaskedCRF
from mcrf.crf import scan as crf_scan
from mcrf.crf.schemes import scheme_labels

from crf_oracle import all_paths


def _pair(scheme: str, types=("PER", "LOC"), mode: str = "mcrf"):
    labels = scheme_labels(types, scheme)
    scan = MaskedCRF(len(labels), batch_first=True, labels=labels, scheme=scheme, mode=mode, algorithm="scan")
    seq = MaskedCRF(len(labels), batch_first=True, labels=labels, scheme=scheme, mode=mode, algorithm="sequential")
    return scan, seq


@pytest.mark.parametrize("scheme", ["BIO", "BIOES", "IOB1"])
@pytest.mark.parametrize("mode", ["mcrf", "crf"])
def test_ties_break_exactly_like_the_sequential_viterbi(scheme, mode):
    """Small integer scores: sums are exact in float32, so many paths tie exactly. The scan
    must pick the same path as the sequential backtrace every time, with the same score."""
    scan, seq = _pair(scheme, mode=mode)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in scan.parameters():
            p.copy_(torch.randint(-1, 2, p.shape, generator=gen).float())
    seq.load_state_dict(scan.state_dict())
    for steps in (1, 2, 3, 5, 9, 17):
        emissions = torch.randint(-1, 2, (16, steps, scan.num_tags), generator=gen).float()
        mask = torch.rand(16, steps, generator=gen) > 0.25
        paths, scores = scan.viterbi(emissions, mask)
        expected_paths, expected_scores = seq.viterbi(emissions, mask)
        assert torch.equal(paths, expected_paths), steps
        assert torch.equal(scores, expected_scores), steps
        assert scan.decode(emissions, mask) == seq.decode(emissions, mask)
        if steps <= 5:  # and the score is the optimum of the brute-force oracle
            for b in range(16):
                oracle = all_paths(scan, emissions[b][mask[b]], train=False)
                best = oracle[0][0] if oracle[0][1] else 0.0
                assert scores[b, 0].item() == pytest.approx(best, abs=1e-6)


@pytest.mark.parametrize("steps", [2, 7, 64, 129])
def test_long_sequences_agree_with_the_sequential_algorithms(steps):
    scan, seq = _pair("BIOES", types=("A", "B", "C"))
    torch.manual_seed(steps)
    with torch.no_grad():
        scan.transitions.normal_(0, 2)
    seq.load_state_dict(scan.state_dict())
    emissions = torch.randn(6, steps, scan.num_tags) * 4
    lengths = torch.tensor([steps, steps // 2, 1, 0, steps - 1, max(steps - 5, 1)])
    mask = torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)
    mask[4, 0] = False  # a masked first position
    tags = seq.viterbi(emissions + torch.randn_like(emissions) * 3, mask)[0][:, 0].clamp(min=0)
    em_scan, em_seq = emissions.clone().requires_grad_(True), emissions.clone().requires_grad_(True)
    llh_scan = scan(em_scan, tags, mask, reduction="none")
    llh_seq = seq(em_seq, tags, mask, reduction="none")
    torch.testing.assert_close(llh_scan, llh_seq, atol=1e-4, rtol=1e-5)
    llh_scan.sum().backward()
    llh_seq.sum().backward()
    # float32 accumulation over 100+ steps of scores ~1e3 nats (float32 spacing there ~6e-5): each
    # algorithm's gradient is ~1e-4 (scan) to ~5e-4 (sequential) off the float64 one, so the two
    # float32 results are compared at that level; exactness itself is gradcheck's (float64)
    torch.testing.assert_close(em_scan.grad, em_seq.grad, atol=6e-4, rtol=1e-3)
    reference = seq.double()
    reference.zero_grad()
    em_64 = emissions.double().requires_grad_(True)
    reference(em_64, tags, mask, reduction="sum").backward()
    torch.testing.assert_close(em_scan.grad.double(), em_64.grad, atol=5e-4, rtol=1e-3)
    for p_scan, p_64 in zip(scan.parameters(), reference.parameters()):
        torch.testing.assert_close(p_scan.grad.double(), p_64.grad, atol=2e-3, rtol=1e-4)
    seq.float()
    assert torch.equal(scan.viterbi(emissions, mask)[0], seq.viterbi(emissions, mask)[0])
    torch.testing.assert_close(scan.viterbi(emissions, mask)[1], seq.viterbi(emissions, mask)[1], atol=1e-4, rtol=1e-6)
    torch.testing.assert_close(scan.marginals(emissions, mask), seq.marginals(emissions, mask), atol=3e-4, rtol=1e-3)


def test_the_rule_picks_the_scan_for_few_long_sequences_only():
    assert crf_scan.use_scan(1, 256, 9, decode=True) and crf_scan.use_scan(4, 128, 9, decode=True)
    assert crf_scan.use_scan(1, 256, 9, decode=False)
    assert not crf_scan.use_scan(32, 64, 9, decode=True) and not crf_scan.use_scan(32, 64, 9, decode=False)
    assert not crf_scan.use_scan(64, 256, 37, decode=False) and not crf_scan.use_scan(1, 8, 9, decode=True)


def test_on_cuda_the_rule_follows_issue_19s_h200_table():
    """Decode: the scan at every cell of the table; NLL: the scan from T = 128, sequential at 32 x 64 x 9."""
    for batch, steps, tags in [(32, 64, 9), (512, 128, 9), (64, 256, 37), (16, 1024, 9), (1, 8, 9)]:
        assert crf_scan.use_scan(batch, steps, tags, decode=True, device_type="cuda")
    for batch, steps, tags in [(512, 128, 9), (64, 256, 37), (1, 512, 9), (16, 1024, 9)]:
        assert crf_scan.use_scan(batch, steps, tags, decode=False, device_type="cuda")
    assert not crf_scan.use_scan(32, 64, 9, decode=False, device_type="cuda")


def test_the_layer_asks_the_rule_with_the_inputs_device_type(monkeypatch):
    seen = []
    monkeypatch.setattr(crf_scan, "use_scan", lambda *args: seen.append(args) or False)
    crf = MaskedCRF(3, batch_first=True)
    crf.decode(torch.randn(2, 4, 3))
    assert seen == [(2, 4, 3, True, "cpu")]


def test_unknown_algorithm_is_refused():
    with pytest.raises(ValueError, match="invalid algorithm: expected one of"):
        MaskedCRF(3, algorithm="parallel")
