"""Every bad input gets a clear error that says what was expected and what came."""

from __future__ import annotations

import pytest
import torch

from mcrf import MaskedCRF


@pytest.fixture
def crf() -> MaskedCRF:
    return MaskedCRF(3, batch_first=True, labels=["O", "B-PER", "I-PER"], scheme="BIO")


def _inputs(batch=2, steps=4, num_tags=3):
    return torch.randn(batch, steps, num_tags), torch.zeros(batch, steps, dtype=torch.long)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(num_tags=0), ValueError, "invalid number of tags"),
        (dict(num_tags=3, mode="soft"), ValueError, "expected one of"),
        (dict(num_tags=2, labels=["O", "B-X", "I-X"]), ValueError, "expected 2 labels"),
        (dict(num_tags=3, scheme="BIO"), ValueError, "needs labels"),
        (dict(num_tags=3, labels=["O", "B-X", "I-X"], scheme="XYZ"), ValueError, "XYZ"),
        (dict(num_tags=2, allowed_start=torch.ones(3, dtype=torch.bool)), ValueError, r"expected shape \(2,\)"),
        (dict(num_tags=2, allowed_transitions=torch.ones(2, 2)), TypeError, "must be a bool tensor"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        MaskedCRF(**kwargs)


def test_emission_shape_and_type_errors(crf):
    emissions, tags = _inputs()
    with pytest.raises(ValueError, match="dimension of 3, got 2"):
        crf(emissions[0], tags)
    with pytest.raises(ValueError, match="last dimension of emissions is 3, got 4"):
        crf(torch.randn(2, 4, 4), tags)
    with pytest.raises(TypeError, match="floating point"):
        crf(emissions.long(), tags)
    with pytest.raises(TypeError, match="torch.Tensor"):
        crf.decode(emissions.tolist())


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_emissions(crf, bad):
    emissions, tags = _inputs()
    emissions[1, 2, 0] = bad
    with pytest.raises(ValueError, match="NaN|infinite"):
        crf(emissions, tags)
    with pytest.raises(ValueError, match="expected finite"):
        crf.decode(emissions)


def test_tag_errors(crf):
    emissions, tags = _inputs()
    with pytest.raises(ValueError, match=r"must match, got \(2, 4\) and \(2, 3\)"):
        crf(emissions, tags[:, :3])
    with pytest.raises(TypeError, match="integer tensor"):
        crf(emissions, tags.float())
    bad = tags.clone()
    bad[1, 2] = 3
    with pytest.raises(ValueError, match=r"in \[0, 3\).*got 3 at batch index 1, position 2"):
        crf(emissions, bad)
    bad[1, 2] = -100
    with pytest.raises(ValueError, match="got -100"):
        crf(emissions, bad)


def test_mask_errors(crf):
    emissions, tags = _inputs()
    with pytest.raises(ValueError, match=r"first two dimensions of emissions and mask must match, got \(2, 4\) and \(2, 3\)"):
        crf(emissions, tags, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be bool.*float"):
        crf(emissions, tags, torch.ones(2, 4))
    with pytest.raises(ValueError, match="only 0 and 1, got value 2"):
        crf.decode(emissions, torch.full((2, 4), 2))


def test_reduction_and_k_errors(crf):
    emissions, tags = _inputs()
    with pytest.raises(ValueError, match="invalid reduction"):
        crf(emissions, tags, reduction="avg")
    with pytest.raises(ValueError, match="positive int"):
        crf.viterbi(emissions, k=0)


def test_illegal_gold_sequence_names_batch_position_and_tags(crf):
    emissions, tags = _inputs()
    tags[1] = torch.tensor([0, 0, 2, 2])  # O -> I-PER
    with pytest.raises(ValueError, match=r"batch index 1, position 2: transition 'O' -> 'I-PER'"):
        crf(emissions, tags)
    tags[1] = torch.tensor([2, 2, 0, 0])  # opens with I-PER
    with pytest.raises(ValueError, match=r"batch index 1, position 0: sequence starts with 'I-PER'"):
        crf(emissions, tags)
    # positions are reported in the caller's coordinates, also with a masked first position
    mask = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1]], dtype=torch.bool)
    tags[1] = torch.tensor([0, 2, 2, 0])
    with pytest.raises(ValueError, match="batch index 1, position 1"):
        crf(emissions, tags, mask)
    # under the other modes the same data is accepted
    relaxed = MaskedCRF(3, batch_first=True, labels=crf.labels, mode="mcrf-decoding")
    assert torch.isfinite(relaxed(emissions, tags))


def test_no_legal_path_under_explicit_tables_is_reported():
    crf = MaskedCRF(2, batch_first=True, allowed_end=torch.tensor([False, False]))
    with pytest.raises(ValueError, match="no legal tag path"):
        crf.decode(torch.randn(1, 3, 2))
    paths, scores = crf.viterbi(torch.randn(1, 3, 2))
    assert scores[0, 0].item() == float("-inf") and (paths == -1).all()
