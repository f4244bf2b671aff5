"""Dynamic micro-batching: one worker thread owns the model and tags concurrent requests together.

Requests (each a list of sentences) are queued with ``submit``, which returns a
``concurrent.futures.Future`` at once. The worker takes the oldest request, then gathers
more until the batch holds ``max_batch`` sentences or ``max_wait_ms`` have passed since that
oldest request arrived, whichever comes first, and tags them all through ``predict_stream``
(length-sorted forward passes that pad little, ``padding_groups``; the
records are built by ``mcrf.predict.records.to_record``, exactly as ``mcrf predict --format jsonl``
builds them).

The queue is bounded (``max_queue`` sentences): ``submit`` raises ``QueueFull`` rather than let a
request wait behind an unbounded backlog. A failure inside the model fails only the requests it
concerns: a failed batch of several requests is retried one request at a time, the error is
logged with its traceback, and the worker goes on. A request whose future was cancelled
(its client went away) before the worker took it is skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, List, Sequence

from mcrf.data.types import Sentence
from mcrf.predict.records import to_record
from mcrf.predict.stream import predict_stream

__all__ = ["MicroBatcher", "QueueFull", "BatcherClosed", "tag_records", "padding_groups"]

logger = logging.getLogger(__name__)

Record = Dict[str, object]


class QueueFull(RuntimeError):
    """The queue holds ``max_queue`` sentences already: answer 503 and let the client retry."""


class BatcherClosed(RuntimeError):
    """The batcher is shutting down and takes no new requests."""


def padding_groups(lengths: Sequence[int], max_size: int, waste: float = 0.25, slack: int = 8) -> List[List[int]]:
    """Indices of ``lengths`` sorted by length, cut into forward passes that pad little.

    A micro-batch mixes whatever requests came together; padded to its longest sentence, a one-word
    request next to a forty-word one costs forty words (and attention grows with the square). Going
    up the sorted lengths, a pass is closed when the next sentence would make its padding exceed
    ``waste`` of its real words (and ``slack`` words), or the pass holds ``max_size`` sentences.

    >>> padding_groups([9, 1, 10, 2, 40, 12], max_size=8)
    [[1, 3], [0, 2, 5], [4]]
    """
    groups: List[List[int]] = []
    real = 0  # words of the open group
    for index in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        group = groups[-1] if groups else None
        if group is not None and len(group) < max_size:
            padding = (len(group) + 1) * lengths[index] - (real + lengths[index])
            if padding <= max(waste * (real + lengths[index]), slack):
                group.append(index)
                real += lengths[index]
                continue
        groups.append([index])
        real = lengths[index]
    return groups


def tag_records(tagger, sentences: Sequence[Sentence], batch_size: int) -> List[Record]:
    """The ``jsonl`` records of ``sentences`` (``predict_stream`` + ``to_record``, as ``mcrf predict``), in order.

    The sentences are tagged in length-sorted forward passes of at most ``batch_size`` that pad little
    (``padding_groups``).

    Args:
        tagger: a ``mcrf.models.Tagger``.
        sentences: the sentences of one micro-batch.
        batch_size: most sentences per forward pass.
    """
    records: List[Record] = [{} for _ in sentences]
    for group in padding_groups([len(s.tokens) for s in sentences], batch_size):
        predictions = predict_stream(tagger, [sentences[i] for i in group], len(group), chunk_batches=1)
        for index, prediction in zip(group, predictions):
            records[index] = to_record(prediction)
    return records


@dataclass
class _Job:
    sentences: List[Sentence]
    future: Future
    arrived: float = field(default_factory=time.monotonic)


class MicroBatcher:
    """Gathers concurrent requests into micro-batches for one worker thread that owns the model.

    Args:
        tagger: the model; only the worker thread touches it once ``start`` was called.
        max_batch: most sentences per micro-batch (a single larger request is tagged alone).
        max_wait_ms: longest the oldest request waits for others to join.
        max_queue: most sentences queued (requests beyond it get ``QueueFull``).
        tag: ``(tagger, sentences, batch_size) -> records``; ``tag_records`` by default.
    """

    def __init__(self, tagger, max_batch: int = 32, max_wait_ms: float = 5.0, max_queue: int = 1024,
                 tag: Callable[..., List[Record]] = tag_records) -> None:
        self._tagger = tagger
        self._max_batch = max_batch
        self._max_wait = max_wait_ms / 1000.0
        self._max_queue = max_queue
        self._tag = tag
        self._jobs: Deque[_Job] = deque()
        self._queued = 0  # sentences in self._jobs
        self._condition = threading.Condition()
        self._closing = False
        self._idle = False  # the worker waits for a first request (submit must wake it)
        self._thread = threading.Thread(target=self._run, name="mcrf-serve-model", daemon=True)
        self._batch_sizes: Counter = Counter()  # sentences per micro-batch -> count
        self._requests_per_batch: Counter = Counter()
        self._failed = 0

    # ------------------------------------------------------------------ public
    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def submit(self, sentences: Sequence[Sentence]) -> Future:
        """Queue one request; its future resolves to one record per sentence, in order.

        Raises:
            QueueFull: the queue has no room for ``len(sentences)`` more sentences.
            BatcherClosed: ``stop`` was called.
        """
        job = _Job(list(sentences), Future())
        with self._condition:
            if self._closing:
                raise BatcherClosed("the server is shutting down")
            if self._queued + len(job.sentences) > self._max_queue and self._queued > 0:
                raise QueueFull(f"{self._queued} sentences are waiting (max_queue {self._max_queue})")
            self._jobs.append(job)
            self._queued += len(job.sentences)
            # wake the worker only when it waits for a first request or a batch is complete: a wake-up per
            # request while it gathers would hand the GIL back and forth for nothing
            if self._idle or self._queued >= self._max_batch:
                self._condition.notify()
        return job.future

    def stop(self, timeout: float = None) -> None:
        """Take no new requests, tag those already queued, and end the worker thread."""
        with self._condition:
            self._closing = True
            self._condition.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def stats(self) -> Dict[str, object]:
        """Counters of what was served: micro-batch sizes (sentences -> batches), requests per batch."""
        with self._condition:
            return {
                "batches": sum(self._batch_sizes.values()),
                "sentences": sum(size * n for size, n in self._batch_sizes.items()),
                "batch_sizes": {str(size): n for size, n in sorted(self._batch_sizes.items())},
                "requests_per_batch": {str(size): n for size, n in sorted(self._requests_per_batch.items())},
                "failed_requests": self._failed,
                "queued_sentences": self._queued,
                "max_batch": self._max_batch,
                "max_queue": self._max_queue,
            }

    # ------------------------------------------------------------------ worker
    def _next_batch(self) -> List[_Job]:
        """Block until a request comes; gather more until full or its wait is over ([] when closed)."""
        with self._condition:
            while not self._jobs:
                if self._closing:
                    return []
                self._idle = True
                self._condition.wait()
                self._idle = False
            batch = [self._jobs.popleft()]
            size = len(batch[0].sentences)
            deadline = batch[0].arrived + self._max_wait
            while size < self._max_batch:
                if self._jobs:
                    if size + len(self._jobs[0].sentences) > self._max_batch:
                        break
                    job = self._jobs.popleft()
                    batch.append(job)
                    size += len(job.sentences)
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closing:
                    break
                self._condition.wait(remaining)
            self._queued -= size
        return [job for job in batch if job.future.set_running_or_notify_cancel()]

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                with self._condition:
                    if self._closing and not self._jobs:
                        return
                continue
            self._serve(batch)

    def _serve(self, batch: List[_Job]) -> None:
        sentences = [sentence for job in batch for sentence in job.sentences]
        try:
            records = self._tag(self._tagger, sentences, self._max_batch)
        except Exception as error:  # noqa: BLE001 - the worker must survive any failure of the model
            if len(batch) > 1:  # find the request(s) at fault; the others still get their answers
                for job in batch:
                    self._serve([job])
                return
            logger.exception("tagging a request of %d sentence(s) failed", len(sentences))
            with self._condition:
                self._failed += 1
            batch[0].future.set_exception(error)
            return
        with self._condition:
            self._batch_sizes[len(sentences)] += 1
            self._requests_per_batch[len(batch)] += 1
        position = 0
        for job in batch:
            job.future.set_result(records[position : position + len(job.sentences)])
            position += len(job.sentences)
