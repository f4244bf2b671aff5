"""``ServeConfig``: the defaults of ``mcrf serve`` (the CLI generates its flags from this class)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from mcrf.errors import ConfigError

__all__ = ["ServeConfig"]


@dataclass
class ServeConfig:
    """Settings of ``mcrf serve``.

    Attributes:
        host: address to listen on; the loopback address by default (put a reverse proxy in front
            to expose it).
        port: TCP port; 0 picks a free one (the chosen address is logged).
        max_batch: most sentences tagged in one micro-batch (one length-sorted forward pass).
        max_wait_ms: longest a request waits for others to join its micro-batch, in milliseconds.
        max_queue: most sentences waiting for the model; a request that does not fit is answered
            503 with Retry-After instead of waiting behind an unbounded queue.
        max_body: largest request body in bytes (413 above it).
        max_words: most words in one text (413 above it).
        device: ``cpu``, ``cuda``, ``cuda:1``, ...; ``None`` picks CUDA when available.
        retry_after: seconds a client is told to wait (``Retry-After``) when the queue is full.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 1024
    max_body: int = 1_000_000
    max_words: int = 1000
    device: Optional[str] = None
    retry_after: int = 1

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_queue", "max_body", "max_words", "retry_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"expected {name} to be a positive integer, got {value!r}")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"expected port to be an integer in 0..65535, got {self.port!r}")
        if (isinstance(self.max_wait_ms, bool) or not isinstance(self.max_wait_ms, (int, float))
                or not 0 <= self.max_wait_ms <= 10_000):
            raise ConfigError(f"expected max_wait_ms to be a number of milliseconds in 0..10000, "
                              f"got {self.max_wait_ms!r}")
        if self.max_queue < self.max_batch:
            raise ConfigError(f"max_queue ({self.max_queue}) must be at least max_batch ({self.max_batch}): "
                              "a full micro-batch has to fit in the queue")
        if not isinstance(self.host, str) or not self.host:
            raise ConfigError(f"expected host to be an address such as 127.0.0.1, got {self.host!r}")
