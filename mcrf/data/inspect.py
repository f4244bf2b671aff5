"""``inspect_corpus``: per-split statistics of a loaded corpus (the data of ``mcrf inspect``)."""

from __future__ import annotations

from collections import Counter

from mcrf.crf import spans
from mcrf.data.types import Corpus

__all__ = ["inspect_corpus", "format_inspection"]


def inspect_corpus(corpus: Corpus) -> dict:
    """Summarise a corpus as one JSON-ready dict.

    Returns:
        ``{"name", "scheme", "labels", "notes", "splits": {split: {"sentences", "tokens", "labels",
        "illegal", "illegal_at", "policy", "repaired", "dropped", "source_scheme", "entities"}}}``
        where ``labels`` of a split are the tags seen in it (``"O"`` first) and ``illegal``
        counts the gold sequences that broke the source scheme before the policy acted.
    """
    splits: dict[str, dict] = {}
    for split, sentences in corpus.splits.items():
        seen = set()
        entities: Counter = Counter()
        tokens = 0
        for sentence in sentences:
            tags = sentence.tags or ()
            seen.update(tags)
            tokens += len(sentence.tokens)
            entities.update(span.label for span in spans.get_spans(tags, corpus.scheme))
        notes = corpus.report.get(split, {})
        splits[split] = {
            "sentences": len(sentences),
            "tokens": tokens,
            "labels": sorted(seen, key=lambda t: (t != "O", t)),
            "illegal": int(notes.get("illegal", 0)),
            "illegal_at": list(notes.get("illegal_at", [])),
            "policy": notes.get("policy"),
            "repaired": int(notes.get("repaired", 0)),
            "dropped": int(notes.get("dropped", 0)),
            "source_scheme": notes.get("source_scheme", corpus.scheme),
            "entities": dict(sorted(entities.items())),
        }
    return {"name": corpus.name, "scheme": corpus.scheme, "labels": list(corpus.labels),
            "notes": list(corpus.notes), "splits": splits}


def format_inspection(info: dict) -> str:
    """Render :func:`inspect_corpus` output as a plain-text report (tables, then details)."""
    splits = info["splits"]
    sources = sorted({s["source_scheme"] for s in splits.values() if s.get("source_scheme")})
    lines: list[str] = [
        f"dataset {info.get('name', '')}: scheme {info['scheme']}"
        + (f" (read as {', '.join(sources)})" if sources and sources != [info["scheme"]] else "")
        + f", {len(info.get('labels', []))} labels",
        *(f"note: {note}" for note in info.get("notes", [])),
        "",
    ]
    header = ["split", "sentences", "tokens", "entities", "labels", "illegal", "policy"]
    rows = [header]
    for name, s in splits.items():
        action = s.get("policy") or "-"
        if s.get("repaired"):
            action += f" ({s['repaired']} repaired)"
        if s.get("dropped"):
            action += f" ({s['dropped']} dropped)"
        rows.append([name, f"{s['sentences']:,}", f"{s['tokens']:,}", f"{sum(s.get('entities', {}).values()):,}",
                     str(len(s["labels"])), f"{s['illegal']:,}", action])
    lines += _table(rows)
    types = sorted({t for s in splits.values() for t in s.get("entities", {})})
    if types:
        lines += ["", "entities per type:"]
        rows = [["split"] + [t or "(untyped)" for t in types]]
        rows += [[name] + [f"{s['entities'].get(t, 0):,}" for t in types] for name, s in splits.items()]
        lines += _table(rows)
    lines += ["", "labels:"]
    lines += [f"  {name}: {' '.join(s['labels'])}" for name, s in splits.items()]
    illegal = [(name, where) for name, s in splits.items() for where in s.get("illegal_at", [])]
    if illegal:
        lines += ["", "illegal gold sequences (first few per split):"]
        lines += [f"  {name}: {where}" for name, where in illegal]
    return "\n".join(lines)


def _table(rows: list[list[str]]) -> list[str]:
    """Align columns: the first and text columns left, numeric columns right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    numeric = [i > 0 and all(row[i][:1].isdigit() for row in rows[1:]) for i in range(len(widths))]
    return [
        "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)).rstrip()
        for row in rows
    ]
