"""``mcrf compare --summarize DIR``: the comparisons in ``DIR/*/results.json`` side by side.

Re-renders each ``DIR/*/results.md`` from its ``results.json`` (so every comparison reads the way this
mcrf's ``mcrf.compare.report`` writes it: its verdicts and cautions included; no number changes), then writes
``DIR/README.md`` (test F1 per variant per corpus, next to Wei et al.'s BERT numbers where
the paper has them; ΔF1 MCRF − CRF+Retain with its p-value; the plain CRF's illegal path rate)
and ``DIR/summary.png`` (ΔF1 per corpus: mean, bootstrap 95% CI, one dot per seed, the paper's Δ).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from mcrf.compare.report import plot_deltas, render_markdown, save_figure, shown
from mcrf.compare.variants import VARIANTS
from mcrf.errors import InputNotFound
from mcrf.io.outputs import save_text

__all__ = ["PAPER", "summarize", "render_summary"]

#: Test F1 of Wei et al. (NAACL 2021), BERT-base encoder, by registered dataset name.
PAPER: Dict[str, Dict[str, float]] = {
    "conll2003": {"softmax-retain": 90.1, "crf-retain": 90.4, "crf-discard": 90.6, "mcrf-decoding": 91.2,
                  "mcrf": 91.7},
    "conll2000": {"crf-retain": 96.5, "crf-discard": 96.6, "mcrf-decoding": 96.6, "mcrf": 96.9},
    "atis": {"crf-retain": 95.5, "crf-discard": 95.8, "mcrf-decoding": 95.8, "mcrf": 95.9},
    "snips": {"crf-retain": 94.6, "crf-discard": 95.1, "mcrf-decoding": 95.1, "mcrf": 95.3},
    "resume": {"crf-retain": 95.9, "crf-discard": 97.2, "mcrf-decoding": 97.3, "mcrf": 97.6},
}
_PAPER_ALIASES = {"resume-bmes": "resume"}
_COLUMNS = ("softmax-retain", "softmax-discard", "crf-retain", "crf-discard", "mcrf-decoding", "mcrf")
_CLAIM = ("mcrf", "crf-retain")


def _paper(dataset: str) -> Optional[Dict[str, float]]:
    return PAPER.get(_PAPER_ALIASES.get(dataset, dataset))


def _load(folder: Path) -> List[Dict[str, Any]]:
    found = []
    for path in sorted(folder.glob("*/results.json")):
        results = json.loads(path.read_text(encoding="utf-8"))
        results["folder"] = path.parent.name
        found.append(results)
    return found


def _claim(results: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    return next((p for p in results["pairs"] if (p["a"], p["b"]) == _CLAIM), None)


def _f1(results: Dict[str, Any], name: str) -> str:
    row = results["variants"].get(name)
    if not row or "test_f1" not in row:
        return ""
    stat = row["test_f1"]
    return shown(stat["mean"], 2) + ("" if stat["std"] is None else f" ± {shown(stat['std'], 2)}")


def _unfinished(folder: Path) -> List[str]:
    """Comparison folders without results yet, with their finished cell counts."""
    lines = []
    for settings in sorted(folder.glob("*/compare.json")):
        if not (settings.parent / "results.json").is_file():
            done = len(list(settings.parent.glob("cells/*/cell.json")))
            lines.append(f"- `{settings.parent.name}`: running or interrupted, {done} cell(s) finished")
    return lines


def render_summary(all_results: List[Dict[str, Any]], unfinished: Sequence[str] = ()) -> str:
    """The summary table (markdown) over several comparisons' ``results.json``, then the unfinished ones."""
    head = "| comparison | seeds | train sentences | " + " | ".join(VARIANTS[n].title for n in _COLUMNS) + \
           " | ΔF1 MCRF − CRF+Retain [95% CI] (p) | CRF illegal % |"
    lines = ["# Does masking help? All corpora", "",
             "Test strict span F1 (%), mean ± std over seeds; one row per comparison folder (corpus-encoder), "
             "and under it the paper's BERT-base numbers (Wei et al., NAACL 2021) where it reports the corpus. "
             "ΔF1 is the mean over seeds of MCRF-training minus CRF + Retain, with its paired bootstrap 95% CI "
             "and paired approximate-randomization p-value over test sentences. CRF illegal: share of test "
             "sentences whose plain-CRF Viterbi path breaks the scheme before post-processing. Each folder's "
             "results.md has the command line that made it; train sentences shows where a comparison used a subset.", "",
             head, "|" + "---|" * (len(_COLUMNS) + 5)]
    for results in all_results:
        claim = _claim(results)
        delta = "" if claim is None else (f"{shown(claim['mean_delta'], 2, sign=True)} [{shown(claim['ci95'][0], 2, sign=True)}, "
                                          f"{shown(claim['ci95'][1], 2, sign=True)}] (p {shown(claim['p_value'], 4)})")
        crf = results["variants"].get("crf-retain", {}).get("test_illegal_path_rate")
        illegal = "" if crf is None else shown(crf["mean"], 2)
        link = f"[{results['folder']}]({results['folder']}/results.md)"
        train = results.get("sentences", {}).get("train")
        lines.append(f"| {link} | {len(results['seeds'])} | {'' if train is None else f'{train:,}'} | "
                     + " | ".join(_f1(results, n) for n in _COLUMNS) + f" | {delta} | {illegal} |")
        paper = _paper(results["dataset"])
        if paper:
            paper_delta = paper["mcrf"] - paper["crf-retain"]
            lines.append("| ↳ paper, BERT-base | | | " + " | ".join(
                shown(paper[n], 1) if n in paper else "" for n in _COLUMNS) + f" | {shown(paper_delta, 1, sign=True)} | |")
    if unfinished:
        lines += ["", "Not in the table yet:", "", *unfinished]
    lines += ["", "![ΔF1 per corpus](summary.png)", ""]
    return "\n".join(lines)


def _plot(all_results: List[Dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(r, _claim(r)) for r in all_results if _claim(r) is not None]
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(rows) + 2), 4))
    try:
        plot_deltas(ax, [claim for _, claim in rows])
        papers = [(i, _paper(r["dataset"])) for i, (r, _) in enumerate(rows) if _paper(r["dataset"])]
        if papers:
            ax.scatter([i + 0.15 for i, _ in papers], [p["mcrf"] - p["crf-retain"] for _, p in papers],
                       marker="x", color="C3", zorder=3, label="paper (BERT-base)")
        ax.set_xticks(range(len(rows)), [r["folder"].replace("-", "\n", 1) for r, _ in rows])
        ax.set_xlim(-0.5, len(rows) - 0.5)
        ax.set_ylabel("test ΔF1, MCRF − CRF+Retain (points)")
        ax.set_title("Does masking help? ΔF1 per corpus")
        ax.grid(alpha=0.3)
        if rows:
            ax.legend(fontsize=8)
        save_figure(fig, path)
    finally:
        plt.close(fig)


def summarize(folder: Union[str, Path]) -> Path:
    """Re-render ``folder/*/results.md`` and write ``folder/README.md`` and ``folder/summary.png`` from
    ``folder/*/results.json``.

    Returns:
        The path of the README.

    Raises:
        InputNotFound: ``folder`` holds no comparison.
    """
    folder = Path(folder)
    all_results = _load(folder) if folder.is_dir() else []
    if not all_results:
        raise InputNotFound(f"expected comparison folders with results.json under {folder}/*/, found none; "
                            "run `mcrf compare DATASET --output DIR/NAME` first")
    for results in all_results:  # each results.md as this mcrf renders its results.json
        save_text(folder / results["folder"] / "results.md",
                  render_markdown({k: v for k, v in results.items() if k != "folder"}))
    readme = folder / "README.md"
    save_text(readme, render_summary(all_results, _unfinished(folder)))
    _plot(all_results, folder / "summary.png")
    return readme
