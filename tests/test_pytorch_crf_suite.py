"""pytorch-crf's own test suite (v0.7.2, ``tests/test_crf.py``), pointed at ``MaskedCRF``.

Adapted for mcrf: the same test cases and assertions, with ``MaskedCRF`` imported as ``CRF``
(no constraints: ``MaskedCRF(num_tags)`` is the plain linear-chain CRF), the brute-force
likelihood shared in one helper and computed under ``torch.no_grad`` (torch 2.x refuses
``math.exp`` on a tensor that requires grad). Pointed at pytorch-crf itself, the suite passes
except the two tests marked here (which then pass, i.e. XPASS). Two tests fail on
purpose, marked ``xfail(strict=True)`` with the reason; both differences are listed in the
README ("Differences from pytorch-crf").

Original work: pytorch-crf, https://github.com/kmkurn/pytorch-crf

    Copyright 2017 Kemal Kurniawan <kemal@kkurniawan.com>

    Permission is hereby granted, free of charge, to any person obtaining a copy of
    this software and associated documentation files (the "Software"), to deal in
    the Software without restriction, including without limitation the rights to
    use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
    of the Software, and to permit persons to whom the Software is furnished to do
    so, subject to the following conditions:

    The above copyright notice and this permission notice shall be included in all
    copies or substantial portions of the Software.

    THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
    INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A
    PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT
    HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION
    OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE
    SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""

import itertools
import math
import random

import pytest
import torch
import torch.nn as nn
from pytest import approx

from mcrf import MaskedCRF as CRF

RANDOM_SEED = 1478754

REPR_DIFFERS = pytest.mark.xfail(
    strict=True,
    reason="deliberate: repr shows the mode and scheme, MaskedCRF(num_tags=10, mode='mcrf', scheme=None)",
)
MASKED_FIRST_POSITION = pytest.mark.xfail(
    strict=True,
    reason="deliberate: a masked first position ([CLS], left padding) is supported, not an error",
)


@pytest.fixture(autouse=True)
def _seeded():
    random.seed(RANDOM_SEED)
    torch.manual_seed(RANDOM_SEED)


def compute_score(crf, emission, tag):
    # emission: (seq_length, num_tags)
    assert emission.dim() == 2
    assert emission.size(0) == len(tag)
    assert emission.size(1) == crf.num_tags
    assert all(0 <= t < crf.num_tags for t in tag)
    score = crf.start_transitions[tag[0]] + crf.end_transitions[tag[-1]]
    for cur_tag, next_tag in zip(tag, tag[1:]):
        score += crf.transitions[cur_tag, next_tag]
    for emit, t in zip(emission, tag):
        score += emit[t]
    return score


def make_crf(num_tags=5, batch_first=False):
    return CRF(num_tags, batch_first=batch_first)


def make_emissions(crf, seq_length=3, batch_size=2):
    em = torch.randn(seq_length, batch_size, crf.num_tags)
    if crf.batch_first:
        em = em.transpose(0, 1)
    return em


def make_tags(crf, seq_length=3, batch_size=2):
    # shape: (seq_length, batch_size)
    ts = torch.tensor([[random.randrange(crf.num_tags) for _ in range(batch_size)]
                       for _ in range(seq_length)], dtype=torch.long)
    if crf.batch_first:
        ts = ts.transpose(0, 1)
    return ts


@torch.no_grad()  # adaptation: torch 2.x refuses math.exp on a tensor that requires grad
def manual_llh_of(crf, emission, tag):
    numerator = compute_score(crf, emission, tag)
    all_scores = [compute_score(crf, emission, t)
                  for t in itertools.product(range(crf.num_tags), repeat=len(tag))]
    return numerator - math.log(sum(math.exp(s) for s in all_scores))


def copy_params(src, dst):
    # requires_grad off to copy into leaf parameters in place
    dst.start_transitions.requires_grad_(False).copy_(src.start_transitions)
    dst.end_transitions.requires_grad_(False).copy_(src.end_transitions)
    dst.transitions.requires_grad_(False).copy_(src.transitions)


class TestInit:
    @REPR_DIFFERS
    def test_minimal(self):
        num_tags = 10
        crf = CRF(num_tags)
        assert crf.num_tags == num_tags
        assert not crf.batch_first
        assert isinstance(crf.start_transitions, nn.Parameter)
        assert crf.start_transitions.shape == (num_tags,)
        assert isinstance(crf.end_transitions, nn.Parameter)
        assert crf.end_transitions.shape == (num_tags,)
        assert isinstance(crf.transitions, nn.Parameter)
        assert crf.transitions.shape == (num_tags, num_tags)
        assert repr(crf) == f'CRF(num_tags={num_tags})'

    def test_full(self):
        crf = CRF(10, batch_first=True)
        assert crf.batch_first

    def test_nonpositive_num_tags(self):
        with pytest.raises(ValueError) as excinfo:
            CRF(0)
        assert 'invalid number of tags: 0' in str(excinfo.value)


class TestForward:
    def test_works_with_mask(self):
        crf = make_crf()
        seq_length, batch_size = 3, 2
        emissions = make_emissions(crf, seq_length, batch_size)
        tags = make_tags(crf, seq_length, batch_size)
        mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.uint8).transpose(0, 1)
        llh = crf(emissions, tags, mask=mask)
        manual_llh = 0.
        for emission, tag, mask_ in zip(emissions.transpose(0, 1), tags.transpose(0, 1), mask.transpose(0, 1)):
            seq_len = mask_.sum()
            manual_llh += manual_llh_of(crf, emission[:seq_len], tag[:seq_len])
        assert llh.item() == approx(manual_llh)
        llh.backward()  # ensure gradients can be computed

    def test_works_without_mask(self):
        crf = make_crf()
        emissions = make_emissions(crf)
        tags = make_tags(crf)
        llh_no_mask = crf(emissions, tags)
        llh_mask = crf(emissions, tags, mask=torch.ones_like(tags).byte())
        assert llh_no_mask.item() == approx(llh_mask.item())

    def test_batched_loss(self):
        crf = make_crf()
        batch_size = 10
        emissions = make_emissions(crf, batch_size=batch_size)
        tags = make_tags(crf, batch_size=batch_size)
        llh = crf(emissions, tags)
        assert torch.is_tensor(llh)
        assert llh.shape == ()
        total_llh = 0.
        for i in range(batch_size):
            total_llh += crf(emissions[:, i, :].unsqueeze(1), tags[:, i].unsqueeze(1))
        assert llh.item() == approx(total_llh.item())

    def test_reduction_none(self):
        crf = make_crf()
        emissions = make_emissions(crf)
        tags = make_tags(crf)
        seq_length, batch_size = tags.shape
        llh = crf(emissions, tags, reduction='none')
        assert torch.is_tensor(llh)
        assert llh.shape == (batch_size,)
        manual = [manual_llh_of(crf, e, t) for e, t in zip(emissions.transpose(0, 1), tags.transpose(0, 1))]
        for llh_, manual_llh_ in zip(llh, manual):
            assert llh_.item() == approx(manual_llh_)

    def test_reduction_mean(self):
        crf = make_crf()
        emissions = make_emissions(crf)
        tags = make_tags(crf)
        seq_length, batch_size = tags.shape
        llh = crf(emissions, tags, reduction='mean')
        assert torch.is_tensor(llh)
        assert llh.shape == ()
        manual_llh = sum(manual_llh_of(crf, e, t) for e, t in zip(emissions.transpose(0, 1), tags.transpose(0, 1)))
        assert llh.item() == approx(manual_llh / batch_size)

    def test_reduction_token_mean(self):
        crf = make_crf()
        seq_length, batch_size = 3, 2
        emissions = make_emissions(crf, seq_length, batch_size)
        tags = make_tags(crf, seq_length, batch_size)
        mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.uint8).transpose(0, 1)
        llh = crf(emissions, tags, mask=mask, reduction='token_mean')
        assert torch.is_tensor(llh)
        assert llh.shape == ()
        manual_llh, n_tokens = 0, 0
        for emission, tag, mask_ in zip(emissions.transpose(0, 1), tags.transpose(0, 1), mask.transpose(0, 1)):
            seq_len = mask_.sum()
            manual_llh += manual_llh_of(crf, emission[:seq_len], tag[:seq_len])
            n_tokens += seq_len
        assert llh.item() == approx(manual_llh / n_tokens)

    def test_batch_first(self):
        crf = make_crf()
        emissions = make_emissions(crf)
        tags = make_tags(crf)
        llh = crf(emissions, tags)
        crf_bf = make_crf(batch_first=True)
        copy_params(crf, crf_bf)
        llh_bf = crf_bf(emissions.transpose(0, 1), tags.transpose(0, 1))
        assert llh.item() == approx(llh_bf.item())

    def test_emissions_has_bad_number_of_dimension(self):
        emissions = torch.randn(1, 2)
        tags = torch.empty(2, 2, dtype=torch.long)
        crf = make_crf()
        with pytest.raises(ValueError) as excinfo:
            crf(emissions, tags)
        assert 'emissions must have dimension of 3, got 2' in str(excinfo.value)

    def test_emissions_and_tags_size_mismatch(self):
        emissions = torch.randn(1, 2, 3)
        tags = torch.empty(2, 2, dtype=torch.long)
        crf = make_crf(3)
        with pytest.raises(ValueError) as excinfo:
            crf(emissions, tags)
        assert ('the first two dimensions of emissions and tags must match, '
                'got (1, 2) and (2, 2)') in str(excinfo.value)

    def test_emissions_last_dimension_not_equal_to_number_of_tags(self):
        emissions = torch.randn(1, 2, 3)
        tags = torch.empty(1, 2, dtype=torch.long)
        crf = make_crf(10)
        with pytest.raises(ValueError) as excinfo:
            crf(emissions, tags)
        assert 'expected last dimension of emissions is 10, got 3' in str(excinfo.value)

    @MASKED_FIRST_POSITION
    def test_first_timestep_mask_is_not_all_on(self):
        emissions = torch.randn(3, 2, 4)
        tags = torch.empty(3, 2, dtype=torch.long)
        mask = torch.tensor([[1, 1, 1], [0, 0, 0]], dtype=torch.uint8).transpose(0, 1)
        crf = make_crf(4)
        with pytest.raises(ValueError) as excinfo:
            crf(emissions, tags, mask=mask)
        assert 'mask of the first timestep must all be on' in str(excinfo.value)
        crf = make_crf(4, batch_first=True)
        with pytest.raises(ValueError) as excinfo:
            crf(emissions.transpose(0, 1), tags.transpose(0, 1), mask=mask.transpose(0, 1))
        assert 'mask of the first timestep must all be on' in str(excinfo.value)

    def test_invalid_reduction(self):
        crf = make_crf()
        emissions = make_emissions(crf)
        tags = make_tags(crf)
        with pytest.raises(ValueError) as excinfo:
            crf(emissions, tags, reduction='foo')
        assert 'invalid reduction: foo' in str(excinfo.value)


class TestDecode:
    def test_works_with_mask(self):
        crf = make_crf()
        seq_length, batch_size = 3, 2
        emissions = make_emissions(crf, seq_length, batch_size)
        mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.uint8).transpose(0, 1)
        best_tags = crf.decode(emissions, mask=mask)
        for emission, best_tag, mask_ in zip(emissions.transpose(0, 1), best_tags, mask.transpose(0, 1)):
            seq_len = mask_.sum()
            assert len(best_tag) == seq_len
            assert all(isinstance(t, int) for t in best_tag)
            emission = emission[:seq_len]
            manual_best_tag = max(itertools.product(range(crf.num_tags), repeat=seq_len),
                                  key=lambda t: compute_score(crf, emission, t))
            assert tuple(best_tag) == manual_best_tag

    def test_works_without_mask(self):
        crf = make_crf()
        emissions = make_emissions(crf)
        best_tags_no_mask = crf.decode(emissions)
        best_tags_mask = crf.decode(emissions, mask=emissions.new_ones(emissions.shape[:2]).byte())
        assert best_tags_no_mask == best_tags_mask

    def test_batched_decode(self):
        crf = make_crf()
        batch_size, seq_length = 2, 3
        emissions = make_emissions(crf, seq_length, batch_size)
        mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.uint8).transpose(0, 1)
        batched = crf.decode(emissions, mask=mask)
        non_batched = []
        for i in range(batch_size):
            result = crf.decode(emissions[:, i, :].unsqueeze(1), mask=mask[:, i].unsqueeze(1))
            assert len(result) == 1
            non_batched.append(result[0])
        assert non_batched == batched

    def test_batch_first(self):
        crf = make_crf()
        emissions = make_emissions(crf)
        best_tags = crf.decode(emissions)
        crf_bf = make_crf(batch_first=True)
        copy_params(crf, crf_bf)
        assert best_tags == crf_bf.decode(emissions.transpose(0, 1))

    def test_emissions_has_bad_number_of_dimension(self):
        emissions = torch.randn(1, 2)
        crf = make_crf()
        with pytest.raises(ValueError) as excinfo:
            crf.decode(emissions)
        assert 'emissions must have dimension of 3, got 2' in str(excinfo.value)

    def test_emissions_last_dimension_not_equal_to_number_of_tags(self):
        emissions = torch.randn(1, 2, 3)
        crf = make_crf(10)
        with pytest.raises(ValueError) as excinfo:
            crf.decode(emissions)
        assert 'expected last dimension of emissions is 10, got 3' in str(excinfo.value)

    def test_emissions_and_mask_size_mismatch(self):
        emissions = torch.randn(1, 2, 3)
        mask = torch.tensor([[1, 1], [1, 0]], dtype=torch.uint8)
        crf = make_crf(3)
        with pytest.raises(ValueError) as excinfo:
            crf.decode(emissions, mask=mask)
        assert ('the first two dimensions of emissions and mask must match, '
                'got (1, 2) and (2, 2)') in str(excinfo.value)

    @MASKED_FIRST_POSITION
    def test_first_timestep_mask_is_not_all_on(self):
        emissions = torch.randn(3, 2, 4)
        mask = torch.tensor([[1, 1, 1], [0, 0, 0]], dtype=torch.uint8).transpose(0, 1)
        crf = make_crf(4)
        with pytest.raises(ValueError) as excinfo:
            crf.decode(emissions, mask=mask)
        assert 'mask of the first timestep must all be on' in str(excinfo.value)
