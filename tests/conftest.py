"""Suite-wide test settings."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests use one intra-op thread: the models are tiny, and on a busy 2-core machine two
    OpenMP threads made small steps up to 60x slower. Benchmarks set their own threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
