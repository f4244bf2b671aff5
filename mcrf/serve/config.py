"""``ServeConfig``: the defaults of ``mcrf serve`` (the CLI generates its flags from this class)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from mcrf.errors import ConfigError
from mcrf.fields import inherit, integer, number, option, text, validate
from mcrf.models.quantize import check_quantization
from mcrf.predict.stream import PredictConfig

__all__ = ["ServeConfig"]


@dataclass
class ServeConfig:
    """Settings of ``mcrf serve`` (each field with its help and its validator, ``mcrf.fields.option``)."""

    host: str = option("127.0.0.1", check=text(what="an address such as 127.0.0.1"), help=(
        "address to listen on; the loopback address by default (put a reverse proxy in front to expose it)"))
    port: int = option(8080, check=integer(0, 65535), help="TCP port; 0 picks a free one (the chosen address is logged)")
    max_batch: int = option(32, check=integer(1), help=(
        "most sentences tagged in one micro-batch (one length-sorted forward pass)"))
    max_wait_ms: float = option(5.0, check=number(0, 10_000), help=(
        "longest a request waits for others to join its micro-batch, in milliseconds"))
    max_queue: int = option(1024, check=integer(1), help=(
        "most sentences waiting for the model; a request that does not fit is answered 503 with Retry-After "
        "instead of waiting behind an unbounded queue"))
    max_body: int = option(1_000_000, check=integer(1), help="largest request body in bytes (413 above it)")
    max_words: int = option(1000, check=integer(1), help="most words in one text (413 above it)")
    device: Optional[str] = inherit(PredictConfig, "device")
    retry_after: int = option(1, check=integer(1), help=(
        "seconds a client is told to wait (Retry-After) when the queue is full"))
    mmap_threshold: Optional[int] = inherit(PredictConfig, "mmap_threshold", help=(
        "glibc only: allocations of at least this many bytes get their own memory map, returned to the system "
        "when freed (mallopt M_MMAP_THRESHOLD, as mcrf predict): micro-batches of every size and length "
        "otherwise leave a fragmented, growing heap; none leaves malloc alone"))
    quantize: Optional[str] = inherit(PredictConfig, "quantize", help=(
        "int8 quantizes the encoder's Linear layers for faster CPU inference (mcrf.models.quantize; CPU "
        "only, so no device means the CPU); none keeps float32"))

    def __post_init__(self) -> None:
        validate(self)
        if self.max_queue < self.max_batch:
            raise ConfigError(f"max_queue ({self.max_queue}) must be at least max_batch ({self.max_batch}): "
                              "a full micro-batch has to fit in the queue")
        check_quantization(self.quantize, self.device if self.device is not None else "cpu")  # with the device
