"""MaskedCRF against brute-force enumeration and against pytorch-crf."""

from __future__ import annotations

import math

import pytest
import torch

from mcrf import MaskedCRF
from mcrf.crf.schemes import allowed_transitions, is_legal, scheme_labels

from crf_oracle import all_paths, log_z, marginals
from extras import extra


SCHEMES = ["BIO", "IOB1", "BIOES", "BILOU", "IOE2", "BMES"]
MODES = ["mcrf", "mcrf-decoding", "crf"]


@pytest.fixture(autouse=True, params=["scan", "sequential"])
def algorithm(request, monkeypatch):
    """Every test here runs with both algorithms (the layer's default ``"auto"`` is overridden)."""
    monkeypatch.setitem(MaskedCRF.__init__.__kwdefaults__, "algorithm", request.param)
    return request.param


def make_crf(scheme: str, mode: str, seed: int = 0, types=("PER",)) -> MaskedCRF:
    torch.manual_seed(seed)
    labels = scheme_labels(types, scheme)
    crf = MaskedCRF(len(labels), batch_first=True, labels=labels, scheme=scheme, mode=mode)
    with torch.no_grad():  # scores large enough that constraints matter
        for p in crf.parameters():
            p.normal_(0, 1.5)
    return crf


def legal_gold(crf: MaskedCRF, emissions: torch.Tensor) -> list:
    """A legal gold path for each sequence: a random legal path from the oracle."""
    gen = torch.Generator().manual_seed(1)
    out = []
    for em in emissions:
        paths = all_paths(crf, em, train=True)
        out.append(list(paths[int(torch.randint(len(paths), (1,), generator=gen))][1]))
    return out


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("mode", MODES)
def test_likelihood_best_path_kbest_and_marginals_match_brute_force(scheme, mode):
    crf = make_crf(scheme, mode, seed=SCHEMES.index(scheme))
    steps = 4 if crf.num_tags <= 5 else 3
    emissions = torch.randn(3, steps, crf.num_tags) * 2
    tags = torch.tensor(legal_gold(crf, emissions))
    llh = crf(emissions, tags, reduction="none")
    for b in range(3):
        gold = sum(emissions[b, t, tags[b, t]].item() for t in range(steps))
        gold += crf.start_transitions[tags[b, 0]].item() + crf.end_transitions[tags[b, -1]].item()
        gold += sum(crf.transitions[tags[b, t - 1], tags[b, t]].item() for t in range(1, steps))
        assert llh[b].item() == pytest.approx(gold - log_z(crf, emissions[b]), abs=1e-4)

    k = 5
    paths, scores = crf.viterbi(emissions, k=k)
    assert paths.shape == (3, k, steps) and scores.shape == (3, k)
    marg = crf.marginals(emissions)
    for b in range(3):
        oracle = all_paths(crf, emissions[b], train=False)
        assert crf.decode(emissions)[b] == list(oracle[0][1])
        for r in range(k):
            if r < len(oracle):
                assert scores[b, r].item() == pytest.approx(oracle[r][0], abs=1e-4)
                # ties aside, the r-th path is the oracle's r-th path
                assert paths[b, r].tolist() == list(oracle[r][1])
            else:
                assert scores[b, r].item() == float("-inf")
                assert (paths[b, r] == -1).all()
        torch.testing.assert_close(marg[b].double(), marginals(crf, emissions[b]), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_mcrf_puts_no_mass_on_illegal_paths_but_crf_does(scheme):
    mcrf = make_crf(scheme, "mcrf", types=("PER", "LOC"))
    crf = make_crf(scheme, "crf", types=("PER", "LOC"))
    crf.load_state_dict(mcrf.state_dict())
    emissions = torch.randn(2, 3, mcrf.num_tags) * 3
    marg = mcrf.marginals(emissions)
    tables = allowed_transitions(mcrf.labels, scheme)
    # a tag that cannot open a sequence gets exactly zero probability at the first position
    assert (marg[:, 0, ~tables.start] == 0).all()
    assert (crf.marginals(emissions)[:, 0, ~tables.start] > 0).all()
    # the best paths of the masked layer are legal, the k-best list too
    paths, scores = mcrf.viterbi(emissions, k=8)
    for b in range(2):
        for r in range(8):
            if math.isfinite(scores[b, r].item()):
                assert is_legal([mcrf.labels[t] for t in paths[b, r].tolist()], scheme)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "token_mean"])
def test_unconstrained_equals_pytorch_crf(batch_first, reduction):
    torch.manual_seed(0)
    num_tags, batch, steps = 6, 5, 8
    torchcrf = extra("torchcrf")  # only the comparisons with pytorch-crf need it
    ref = torchcrf.CRF(num_tags, batch_first=batch_first)
    ours = MaskedCRF(num_tags, batch_first=batch_first)
    ours.load_state_dict(ref.state_dict())  # a pytorch-crf state_dict loads as is
    lengths = torch.tensor([8, 3, 1, 6, 8])
    mask = torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)
    emissions = torch.randn(batch, steps, num_tags)
    tags = torch.randint(num_tags, (batch, steps))
    if not batch_first:
        emissions, tags, mask = emissions.transpose(0, 1), tags.t(), mask.t()
    em_ref = emissions.clone().requires_grad_(True)
    em_ours = emissions.clone().requires_grad_(True)
    expected = ref(em_ref, tags, mask.byte(), reduction=reduction)
    got = ours(em_ours, tags, mask, reduction=reduction)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    expected.sum().backward()
    got.sum().backward()
    torch.testing.assert_close(em_ours.grad, em_ref.grad, atol=1e-5, rtol=1e-5)
    for (name, p_ref), p_ours in zip(ref.named_parameters(), ours.parameters()):
        torch.testing.assert_close(p_ours.grad, p_ref.grad, atol=1e-5, rtol=1e-5, msg=name)
    assert ours.decode(emissions, mask) == ref.decode(emissions, mask.byte())
    torch.testing.assert_close(
        ours.loss(emissions, tags, mask, reduction=reduction), -ref(emissions, tags, mask.byte(), reduction=reduction)
    )


def test_decode_matches_pytorch_crf_on_many_random_batches():
    torch.manual_seed(3)
    torchcrf = extra("torchcrf")
    ref = torchcrf.CRF(7, batch_first=True)
    ours = MaskedCRF(7, batch_first=True)
    ours.load_state_dict(ref.state_dict())
    for _ in range(20):
        lengths = torch.randint(1, 12, (9,))
        lengths[0] = 11
        mask = torch.arange(11).unsqueeze(0) < lengths.unsqueeze(1)
        emissions = torch.randn(9, 11, 7) * 3
        assert ours.decode(emissions, mask) == ref.decode(emissions, mask)


def test_loss_is_negative_mean_log_likelihood():
    crf = make_crf("BIO", "mcrf")
    emissions = torch.randn(2, 3, crf.num_tags)
    tags = torch.tensor(legal_gold(crf, emissions))
    torch.testing.assert_close(crf.loss(emissions, tags), -crf(emissions, tags, reduction="mean"))
    assert crf.loss(emissions, tags).item() > 0


def test_marginal_rows_sum_to_one_and_are_gradient_of_log_partition():
    crf = make_crf("BIOES", "mcrf", types=("A", "B"))
    emissions = torch.randn(3, 6, crf.num_tags, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 1, 1, 0, 1, 0], [1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    marg = crf.marginals(emissions, mask)
    torch.testing.assert_close(marg.sum(-1), mask.float())
    # d log Z / d emissions = marginals; log Z = log-likelihood of the gold path minus its score
    tags = torch.zeros(3, 6, dtype=torch.long)  # all-O is legal in every position pattern
    llh = crf(emissions, tags, mask, reduction="sum")
    (grad,) = torch.autograd.grad(llh, emissions)
    onehot = torch.nn.functional.one_hot(tags, crf.num_tags).float() * mask.unsqueeze(-1)
    torch.testing.assert_close(onehot - grad, marg, atol=1e-5, rtol=1e-4)


def test_scheme_is_detected_from_labels():
    crf = MaskedCRF(5, labels=["O", "B-X", "I-X", "E-X", "S-X"])
    assert crf.scheme == "BIOES"
    assert not crf.allowed_start[2] and not crf.allowed_transitions[0, 3]


def test_explicit_tables_for_custom_rules():
    # a sliding window may legally start inside an entity: allow I- at the start
    labels = ["O", "B-X", "I-X"]
    tables = allowed_transitions(labels, "BIO")
    start = torch.ones(3, dtype=torch.bool)
    crf = MaskedCRF(3, batch_first=True, allowed_start=start, allowed_transitions=tables.transitions,
                    allowed_end=tables.end)
    emissions = torch.tensor([[[0.0, 0.0, 9.0], [0.0, 0.0, 9.0]]])
    assert crf.decode(emissions) == [[2, 2]]
    masked = MaskedCRF(3, batch_first=True, labels=labels)
    masked.load_state_dict(crf.state_dict())
    assert masked.decode(emissions)[0][0] != 2


def test_masked_transitions_use_the_named_constant():
    from mcrf.crf.ops import FORBIDDEN_SCORE

    crf = MaskedCRF(3, labels=["O", "B-X", "I-X"])
    start, trans, end = crf.masked_transitions()
    assert start[2].item() == FORBIDDEN_SCORE and trans[0, 2].item() == FORBIDDEN_SCORE
    assert math.isfinite(FORBIDDEN_SCORE)
    assert start[0].item() == crf.start_transitions[0].item()
