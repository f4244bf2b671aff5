"""A self-contained PyTorch tagger with MaskedCRF as a drop-in CRF layer.

Embedding + BiLSTM + ``MaskedCRF`` trained for a few steps on toy data. Swap
``from torchcrf import CRF`` for ``from mcrf import MaskedCRF`` and give it the label
list: the layer then forbids every illegal BIO transition in training and decoding.

Run: python examples/custom_tagger.py
"""

from __future__ import annotations

import torch
from torch import nn

from mcrf import MaskedCRF
from mcrf.crf.schemes import is_legal
from mcrf.crf.spans import get_spans

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
DATA = [
    ("John Smith lives in New York".split(), ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC"]),
    ("Mary visited Paris".split(), ["B-PER", "O", "B-LOC"]),
    ("Anna Lee moved to Berlin".split(), ["B-PER", "I-PER", "O", "O", "B-LOC"]),
    ("Tom flew to San Francisco".split(), ["B-PER", "O", "O", "B-LOC", "I-LOC"]),
]


class Tagger(nn.Module):
    """Word embedding -> BiLSTM -> tag scores -> MaskedCRF."""

    def __init__(self, vocab_size: int, labels: list, dim: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.lstm = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)
        self.scores = nn.Linear(2 * dim, len(labels))
        self.crf = MaskedCRF(len(labels), batch_first=True, labels=labels, scheme="BIO")

    def emissions(self, words: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(self.embed(words))  # shape: (B, T, 2*dim)
        return self.scores(hidden)  # shape: (B, T, K)

    def loss(self, words, tags, mask):
        return self.crf.loss(self.emissions(words), tags, mask)  # mean negative log-likelihood

    def decode(self, words, mask):
        return self.crf.decode(self.emissions(words), mask)


def main() -> None:
    torch.manual_seed(0)
    vocab = {"<pad>": 0}
    for words, _ in DATA:
        for w in words:
            vocab.setdefault(w, len(vocab))
    steps = max(len(w) for w, _ in DATA)
    words = torch.zeros(len(DATA), steps, dtype=torch.long)
    tags = torch.zeros(len(DATA), steps, dtype=torch.long)
    for i, (ws, ts) in enumerate(DATA):
        words[i, : len(ws)] = torch.tensor([vocab[w] for w in ws])
        tags[i, : len(ts)] = torch.tensor([LABELS.index(t) for t in ts])
    mask = words != 0  # bool mask, right padding

    model = Tagger(len(vocab), LABELS)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(80):
        optimizer.zero_grad()
        loss = model.loss(words, tags, mask)
        loss.backward()
        optimizer.step()
        if step % 20 == 0:
            print(f"step {step:3d}  loss {loss.item():.4f}")

    model.eval()
    with torch.no_grad():
        paths = model.decode(words, mask)
        marginals = model.crf.marginals(model.emissions(words), mask)  # shape: (B, T, K)
    for (ws, gold), path, marg in zip(DATA, paths, marginals):
        predicted = [LABELS[t] for t in path]
        assert is_legal(predicted, "BIO")  # guaranteed by the masked CRF
        confidence = [round(marg[i, t].item(), 3) for i, t in enumerate(path)]
        print(" ".join(ws), "->", get_spans(predicted, "BIO"), "confidence", confidence)
    correct = sum(p == [LABELS.index(t) for t in g] for (_, g), p in zip(DATA, paths))
    print(f"{correct}/{len(DATA)} training sentences tagged exactly")


if __name__ == "__main__":
    main()
