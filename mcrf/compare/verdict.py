"""What a comparison's numbers say, in sentences: one verdict per paired claim, and the cautions that
tell when the comparison cannot settle the question.

Everything is read from ``results.json`` (``mcrf.compare.report.build_results``), so the sentences of a
re-rendered ``results.md`` are those of the run that made it. The rules:

- a claim is **settled** when its paired bootstrap 95% CI excludes 0 and its randomization p-value is
  below ``ALPHA``; **not settled** when the CI includes 0; **borderline** when the two tests disagree;
- a caution is added when there are fewer than ``MIN_SEEDS`` seeds (seed-to-seed variation is then
  barely measured), when the seeds disagree in sign, and when a claim's F1 is at or above
  ``CEILING`` (both variants err on a handful of sentences, and ΔF1 rests on those).
"""

from __future__ import annotations

from typing import Any, Dict, List

__all__ = ["ALPHA", "CEILING", "MIN_SEEDS", "verdicts", "cautions"]

#: significance level of "settled"
ALPHA = 0.05
#: test F1 (%) from which a comparison is near the ceiling
CEILING = 98.0
#: fewer seeds than this: the seed-to-seed variation is hardly measured
MIN_SEEDS = 3


def _points(value: float) -> str:
    return f"{value:+.2f}"


def verdicts(results: Dict[str, Any]) -> List[str]:
    """One sentence per paired claim of ``results`` (``results.json``), in its order."""
    lines = []
    for pair in results["pairs"]:
        low, high = pair["ci95"]
        mean, p = pair["mean_delta"], pair["p_value"]
        interval = f"95% CI [{_points(low)}, {_points(high)}], p {p:.4f}"
        if low > 0 or high < 0:
            direction = "better" if mean > 0 else "worse"
            if p < ALPHA:
                text = (f"{pair['claim']}: {_points(mean)} F1, settled: {_first(pair)} is {direction} "
                        f"on this test set ({interval}).")
            else:
                text = (f"{pair['claim']}: {_points(mean)} F1, borderline: the CI excludes 0 but p is not below "
                        f"{ALPHA} ({interval}).")
        else:
            text = f"{pair['claim']}: {_points(mean)} F1, not settled: the CI includes 0 ({interval})."
        lines.append(text)
    return lines


def _first(pair: Dict[str, Any]) -> str:
    """The title of the claim's first variant (``claim`` is ``"<a> − <b>"``)."""
    return pair["claim"].partition(" − ")[0]


def cautions(results: Dict[str, Any]) -> List[str]:
    """Why the comparison may not settle the question (empty when nothing stands out)."""
    found = []
    seeds = len(results["seeds"])
    if seeds < MIN_SEEDS:
        found.append(f"Only {seeds} seed{'s' if seeds != 1 else ''}: how much ΔF1 varies from seed to seed is "
                     f"{'not' if seeds == 1 else 'barely'} measured, and the CI covers test sentences only; "
                     f"use {MIN_SEEDS} or more (--seeds 1,2,3).")
    for pair in results["pairs"]:
        deltas = [d for d in pair["per_seed_delta"] if d is not None]
        if len(deltas) > 1 and min(deltas) < 0 < max(deltas):
            found.append(f"{pair['claim']}: the seeds disagree in sign "
                         f"({', '.join(_points(d) for d in deltas)}).")
    ceiling = _near_ceiling(results)
    if ceiling:
        found.append(f"Test F1 is near the ceiling ({', '.join(ceiling)}): the variants err on few test "
                     "sentences, so ΔF1 rests on a handful of them; a harder corpus says more.")
    return found


def _near_ceiling(results: Dict[str, Any]) -> List[str]:
    """``"<title> <F1>"`` of each claimed variant whose mean test F1 is at or above ``CEILING``."""
    names = []
    for pair in results["pairs"]:
        for name in (pair["a"], pair["b"]):
            if name not in names:
                names.append(name)
    shown = []
    for name in names:
        row = results["variants"].get(name, {})
        stat = row.get("test_f1")
        if stat and stat.get("mean") is not None and stat["mean"] >= CEILING:
            shown.append(f"{row['title']} {stat['mean']:.2f}")
    return shown
