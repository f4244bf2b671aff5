"""Suite-wide test settings."""

from __future__ import annotations

import pytest
import torch

from mcrf.data import load_corpus
from mcrf.models import Tagger, TaggerConfig


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests use one intra-op thread: the models are tiny, and on a busy 2-core machine two
    OpenMP threads made small steps up to 60x slower. Benchmarks set their own threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def sample_model(tmp_path_factory, one_torch_thread):
    """A small BiLSTM tagger trained 40 steps on the sample corpus and saved (fast, sensible output).

    Trained once per session and shared by the CLI, server and sharded-predict tests.
    """
    torch.manual_seed(0)
    corpus = load_corpus("sample")
    train = corpus.splits["train"]
    tagger = Tagger.build(TaggerConfig(encoder="bilstm", labels=corpus.labels, scheme=corpus.scheme,
                                       encoder_options=dict(word_dim=32, char_dim=8, char_filters=16, lstm_hidden=32)),
                          train)
    optimizer = torch.optim.Adam(tagger.parameters(), lr=0.01)
    collate = tagger.collator()
    for step in range(40):
        optimizer.zero_grad()
        tagger(collate(train[(step * 32) % 576:][:32])).backward()
        optimizer.step()
    directory = tmp_path_factory.mktemp("models") / "sample"
    tagger.save_pretrained(directory)
    return directory
