"""Span-level evaluation: strict P/R/F1 per type (seqeval) and the illegal path rate.

``score_predictions`` is a pure function over tag sequences (used by the CLI and by the
distributed evaluation in training); ``evaluate`` runs a tagger over gold sentences, optionally
sharded across the processes of an 🤗 Accelerate ``Accelerator``.

Scoring is always seqeval's ``mode="strict"`` with the scheme class given explicitly, so a span
counts only when its type and both boundaries match and the span is well-formed under the
scheme. For schemes seqeval lacks the tags are converted first (IOB1/IOE1 → BIO, BMES → BIOES)
with ``mcrf.crf.spans.convert``; the spans are unchanged by these conversions.

The illegal path rate is the share of predicted sequences whose *raw* decoder output (before
any ``retain``/``discard`` post-processing) violates the scheme (``Decoded.raw_illegal``) — the
diagnostic of Wei et al. (2021). It is 0 by construction for the ``mcrf`` decoders.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from mcrf.errors import DataError
from mcrf.fields import integer, option, text, validate

__all__ = ["EvalResult", "EvaluateConfig", "evaluate", "score_predictions", "format_table", "predict_sentences"]

# canonical mcrf scheme -> (seqeval scheme class name, scheme to convert to first or None)
_SEQEVAL_SCHEMES = {
    "BIO": ("IOB2", None),
    "IOE2": ("IOE2", None),
    "BIOES": ("IOBES", None),
    "BILOU": ("BILOU", None),
    "IOB1": ("IOB2", "BIO"),
    "IOE1": ("IOB2", "BIO"),
    "BMES": ("IOBES", "BIOES"),
}


@dataclass
class EvalResult:
    """Evaluation of predicted tag sequences against gold ones.

    Scores are fractions in ``[0, 1]``. ``per_type`` maps each entity type to
    ``{"precision", "recall", "f1", "support"}`` (support = number of gold spans).
    ``illegal_paths``/``illegal_path_rate`` and ``sentences_per_second`` are ``None`` when not
    measured (``score_predictions`` without ``raw_illegal``/``seconds``).
    """

    scheme: str
    num_sentences: int
    precision: float
    recall: float
    f1: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    num_gold_spans: int
    per_type: Dict[str, Dict[str, float]] = field(default_factory=dict)
    illegal_paths: Optional[int] = None
    illegal_path_rate: Optional[float] = None
    seconds: Optional[float] = None
    sentences_per_second: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-serialisable dict of all fields."""
        return asdict(self)


@dataclass
class EvaluateConfig:
    """Defaults of ``mcrf evaluate`` (the CLI builds its flags from these fields)."""

    split: str = option("test", check=text(what="a split name such as 'test'"), help=(
        "split of the dataset to score (train, dev, test, ...)"))
    batch_size: int = option(64, check=integer(1), help="sentences per prediction batch")
    device: Optional[str] = option(None, check=text(optional=True), help=(
        "cpu, cuda, cuda:1, ... (default: CUDA when available)"))

    def __post_init__(self) -> None:
        validate(self)


def _seqeval_scheme(scheme: str):
    from mcrf.crf.schemes import canonical_scheme

    canonical = canonical_scheme(scheme)
    name, convert_to = _SEQEVAL_SCHEMES[canonical]
    import seqeval.scheme as seqeval_scheme

    return canonical, getattr(seqeval_scheme, name), convert_to


def _finite(value: Any) -> float:
    value = float(value)
    return 0.0 if math.isnan(value) else value


def score_predictions(
    gold_tag_seqs: Sequence[Sequence[str]],
    pred_tag_seqs: Sequence[Sequence[str]],
    scheme: str,
    *,
    raw_illegal: Optional[Sequence[bool]] = None,
    seconds: Optional[float] = None,
) -> EvalResult:
    """Strict span precision/recall/F1 (micro, macro, per type) of predicted tags.

    Args:
        gold_tag_seqs: gold tags, one sequence per sentence.
        pred_tag_seqs: predicted tags, aligned with ``gold_tag_seqs`` (same lengths).
        scheme: tag scheme of both (any name ``mcrf.crf.schemes.canonical_scheme`` accepts).
        raw_illegal: optional per-sentence flags "the raw decoder output violated the scheme";
            gives ``illegal_paths`` and ``illegal_path_rate``.
        seconds: optional wall time the predictions took; gives ``sentences_per_second``.

    Returns:
        An ``EvalResult``.

    Raises:
        ValueError: mismatched sentence counts or lengths (naming the first bad sentence), or an
            unknown scheme.
    """
    if len(gold_tag_seqs) != len(pred_tag_seqs):
        raise ValueError(
            f"expected as many predicted sequences as gold ones, got {len(pred_tag_seqs)} "
            f"predicted and {len(gold_tag_seqs)} gold"
        )
    for i, (gold, pred) in enumerate(zip(gold_tag_seqs, pred_tag_seqs)):
        if len(gold) != len(pred):
            raise ValueError(
                f"expected predicted tags as long as the gold tags in sentence {i}, got "
                f"{len(pred)} predicted and {len(gold)} gold tags"
            )
    if raw_illegal is not None and len(raw_illegal) != len(gold_tag_seqs):
        raise ValueError(
            f"expected one raw_illegal flag per sentence, got {len(raw_illegal)} flags for "
            f"{len(gold_tag_seqs)} sentences"
        )
    canonical, scheme_cls, convert_to = _seqeval_scheme(scheme)
    gold_seqs = [list(g) for g in gold_tag_seqs if len(g)]
    pred_seqs = [list(p) for p in pred_tag_seqs if len(p)]
    if convert_to is not None:
        from mcrf.crf.spans import convert

        gold_seqs = [convert(g, canonical, convert_to) for g in gold_seqs]
        pred_seqs = [convert(p, canonical, convert_to) for p in pred_seqs]

    report: Dict[str, Dict[str, Any]] = {}
    if gold_seqs:
        from seqeval.metrics import classification_report

        with warnings.catch_warnings():
            # with no entity type anywhere, seqeval's macro/weighted averages are numpy means of nothing
            # (NaN, made 0 by _finite); only those two numpy warnings are expected, any other is shown
            warnings.filterwarnings("ignore", message="Mean of empty slice", category=RuntimeWarning)
            warnings.filterwarnings("ignore", message="invalid value encountered in (scalar )?divide",
                                    category=RuntimeWarning)
            report = classification_report(
                gold_seqs, pred_seqs, mode="strict", scheme=scheme_cls,
                output_dict=True, zero_division=0,
            )
    averages = {"micro avg", "macro avg", "weighted avg"}
    per_type = {
        name: {
            "precision": _finite(row["precision"]),
            "recall": _finite(row["recall"]),
            "f1": _finite(row["f1-score"]),
            "support": int(row["support"]),
        }
        for name, row in sorted(report.items())
        if name not in averages
    }
    micro = report.get("micro avg", {})
    macro = report.get("macro avg", {})
    n = len(gold_tag_seqs)
    illegal = None if raw_illegal is None else int(sum(bool(x) for x in raw_illegal))
    return EvalResult(
        scheme=canonical,
        num_sentences=n,
        precision=_finite(micro.get("precision", 0.0)),
        recall=_finite(micro.get("recall", 0.0)),
        f1=_finite(micro.get("f1-score", 0.0)),
        macro_precision=_finite(macro.get("precision", 0.0)),
        macro_recall=_finite(macro.get("recall", 0.0)),
        macro_f1=_finite(macro.get("f1-score", 0.0)),
        num_gold_spans=sum(row["support"] for row in per_type.values()),
        per_type=per_type,
        illegal_paths=illegal,
        illegal_path_rate=None if illegal is None else (illegal / n if n else 0.0),
        seconds=seconds,
        sentences_per_second=None if not seconds else n / seconds,
    )


def _gold_tags(sentences: Sequence[Any]) -> List[Sequence[str]]:
    for i, sentence in enumerate(sentences):
        if sentence.tags is None:
            where = sentence.source or f"sentence {i}"
            raise DataError(
                f"expected gold tags on every sentence to evaluate, got none at {where}; "
                "evaluate only labelled data (use predict for unlabelled text)"
            )
    return [s.tags for s in sentences]


def predict_sentences(
    tagger: Any, sentences: Sequence[Any], batch_size: int = 32, *, accelerator: Any = None
) -> List[Any]:
    """``tagger.predict`` over ``sentences``, sharded across processes when distributed.

    With an ``accelerator`` of ``n > 1`` processes, process ``r`` predicts sentences
    ``r, r+n, r+2n, ...``; the predictions are gathered to every process and put back in input
    order, so each sentence is predicted exactly once (no padding duplicates, none missing).
    Every process must call this (it is a collective operation).

    Args:
        tagger: a ``Tagger`` (unwrapped, not the DDP wrapper).
        sentences: sentences to predict.
        batch_size: prediction batch size per process.
        accelerator: optional ``accelerate.Accelerator``.

    Returns:
        One ``Decoded`` per sentence, in input order, on every process.
    """
    n_proc = 1 if accelerator is None else accelerator.num_processes
    if n_proc == 1:
        return list(tagger.predict(list(sentences), batch_size=batch_size))
    from accelerate.utils import gather_object

    rank = accelerator.process_index
    indices = list(range(rank, len(sentences), n_proc))
    local = tagger.predict([sentences[i] for i in indices], batch_size=batch_size)
    gathered = gather_object([list(zip(indices, local))])
    by_index: Dict[int, Any] = {}
    for shard in gathered:
        for index, decoded in shard:
            if index in by_index:
                raise RuntimeError(f"sentence {index} was predicted twice in distributed evaluation")
            by_index[index] = decoded
    missing = [i for i in range(len(sentences)) if i not in by_index]
    if missing:
        raise RuntimeError(f"distributed evaluation lost {len(missing)} sentences, e.g. {missing[:5]}")
    return [by_index[i] for i in range(len(sentences))]


def evaluate(
    tagger: Any, sentences: Sequence[Any], batch_size: int = 32, *, accelerator: Any = None
) -> EvalResult:
    """Predict ``sentences`` with ``tagger`` and score against their gold tags.

    Args:
        tagger: a ``Tagger``; its ``config.scheme`` is the scheme used for scoring.
        sentences: gold ``Sentence`` objects (``tags`` set on every one).
        batch_size: prediction batch size.
        accelerator: optional ``accelerate.Accelerator`` to shard prediction across processes
            (see ``predict_sentences``); the result is identical on every process.

    Returns:
        ``EvalResult`` with strict span scores, the illegal path rate and sentences/s.

    Raises:
        ValueError: a sentence without gold tags (naming its source).
    """
    gold = _gold_tags(sentences)
    start = time.perf_counter()
    decoded = predict_sentences(tagger, sentences, batch_size, accelerator=accelerator)
    seconds = time.perf_counter() - start
    return score_predictions(
        gold, [d.tags for d in decoded], tagger.config.scheme,
        raw_illegal=[d.raw_illegal for d in decoded], seconds=seconds,
    )


def format_table(result: EvalResult) -> str:
    """Human-readable table: one row per type, micro and macro averages, then diagnostics."""
    rows = [("type", "precision", "recall", "f1", "support")]
    for name, row in result.per_type.items():
        rows.append((name, f"{100 * row['precision']:.2f}", f"{100 * row['recall']:.2f}",
                     f"{100 * row['f1']:.2f}", str(row["support"])))
    rows.append(("micro avg", f"{100 * result.precision:.2f}", f"{100 * result.recall:.2f}",
                 f"{100 * result.f1:.2f}", str(result.num_gold_spans)))
    rows.append(("macro avg", f"{100 * result.macro_precision:.2f}",
                 f"{100 * result.macro_recall:.2f}", f"{100 * result.macro_f1:.2f}",
                 str(result.num_gold_spans)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for k, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells))
        if k == 0 or k == len(rows) - 3:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f"scheme: {result.scheme}", f"sentences: {result.num_sentences}"]
    if result.illegal_paths is not None:
        notes.append(f"illegal paths: {result.illegal_paths} "
                     f"({100 * (result.illegal_path_rate or 0.0):.2f}%)")
    if result.sentences_per_second is not None:
        notes.append(f"speed: {result.sentences_per_second:.1f} sentences/s")
    lines.append("  ".join(notes))
    return "\n".join(lines)
