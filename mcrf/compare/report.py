"""The results of one comparison: ``results.json`` (every number), ``results.md`` (the same numbers
as tables, with the command line and package versions) and ``results.png``.

``results.md`` shows F1 and rates in percent with 2 decimals, p-values with 4, speeds with 1:
each shown number is its ``results.json`` value rounded (``shown``), nothing is computed twice.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mcrf.compare.cells import SET_PER_CELL
from mcrf.compare.stats import mean_std, paired_test
from mcrf.compare.variants import PAIRS, VARIANTS
from mcrf.compare.verdict import cautions, verdicts

__all__ = ["build_results", "write_results", "render_markdown", "render_summary_lines", "versions", "shown",
           "spread", "plot_deltas", "save_figure"]

#: how results.md qualifies its speeds: each is one timing of one cell, on whatever else the machine ran
SPEED_NOTE = ("* Speeds are one timing per cell, taken while the machine may have run other jobs: they are noisy "
              "and say nothing reliable about the cost of a variant; time that on a quiet machine.")

_PACKAGES = ("torch", "transformers", "accelerate", "seqeval", "numpy", "matplotlib")


def versions() -> Dict[str, str]:
    """Versions of Python, mcrf and the packages the numbers depend on."""
    from importlib import metadata

    import mcrf

    found = {"python": platform.python_version(), "mcrf": mcrf.__version__, "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def spread(values: Sequence[Optional[float]]) -> Dict[str, Any]:
    """``{"mean", "std", "per_seed"}`` (``std`` is ``None`` for fewer than 2 values; ``None`` values skipped)."""
    known = [v for v in values if v is not None]
    mean, std = mean_std(known) if known else (None, None)
    return {"mean": mean, "std": std if len(known) > 1 else None, "per_seed": list(values)}


def shown(value: Optional[float], digits: int, sign: bool = False) -> str:
    """How ``results.md`` writes a number (``—`` for unknown)."""
    if value is None:
        return "—"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _variant_row(name: str, cells: List[Dict[str, Any]]) -> Dict[str, Any]:
    per = [cell["variants"][name] for cell in cells]
    row: Dict[str, Any] = {"title": VARIANTS[name].title, "objective": VARIANTS[name].objective}
    for split in ("dev", "test"):
        if all(split in p for p in per):
            row[f"{split}_f1"] = spread([100 * p[split]["result"]["f1"] for p in per])
            row[f"{split}_illegal_path_rate"] = spread([100 * p[split]["result"]["illegal_path_rate"] for p in per])
    row["train_sentences_per_second"] = spread([cell["train_sentences_per_second"] for cell in cells])
    split = "test" if "test_f1" in row else "dev"
    row["predict_sentences_per_second"] = spread([p[split]["result"]["sentences_per_second"] for p in per])
    return row


def _pair(a: str, b: str, cells_a: List[Dict[str, Any]], cells_b: List[Dict[str, Any]],
          resamples: int) -> Dict[str, Any]:
    test_a = [c["variants"][a]["test"] for c in cells_a]
    test_b = [c["variants"][b]["test"] for c in cells_b]
    deltas = [100 * (x["result"]["f1"] - y["result"]["f1"]) for x, y in zip(test_a, test_b)]
    stats = paired_test([x["counts"] for x in test_a], [y["counts"] for y in test_b], resamples=resamples)
    mean, std = mean_std(deltas)
    return {"a": a, "b": b, "claim": f"{VARIANTS[a].title} − {VARIANTS[b].title}",
            "per_seed_delta": deltas, "mean_delta": mean, "std_delta": std if len(deltas) > 1 else None,
            "p_value": stats["p_value"], "ci95": [stats["ci_low"], stats["ci_high"]],
            "resamples": resamples,
            "method": "two-sided approximate randomization (per-sentence swaps, per seed) and paired "
                      "bootstrap over test sentences; statistic: mean over seeds of the micro F1 difference"}


def build_results(config: Any, base: Any, cells: List[Dict[str, Any]], sizes: Dict[str, int],
                  command: Optional[str] = None) -> Dict[str, Any]:
    """Assemble ``results.json`` from the finished cells.

    Args:
        config: the ``CompareConfig``.
        base: the shared ``TrainConfig``.
        cells: every cell's ``cell.json`` record (all objectives x seeds the variants need).
        sizes: sentences per split as trained and scored.
        command: the command line, recorded as is.
    """
    by_cell = {(c["objective"], c["seed"]): c for c in cells}

    def of(name: str) -> List[Dict[str, Any]]:
        return [by_cell[(VARIANTS[name].objective, seed)] for seed in config.seeds]

    variants = {name: _variant_row(name, of(name)) for name in config.variants}
    pairs = [_pair(a, b, of(a), of(b), config.resamples) for a, b in PAIRS
             if a in variants and b in variants and "test_f1" in variants[a]]
    train = {k: v for k, v in base.to_dict().items() if k not in SET_PER_CELL}
    return {"dataset": config.dataset, "encoder": base.encoder, "seeds": list(config.seeds),
            "variants": variants, "pairs": pairs, "sentences": sizes, "train_config": train,
            "cells": {f"{c['objective']}-seed{c['seed']}": {k: c[k] for k in (
                "best_step", "global_step", "train_seconds", "train_sentences_per_second")} for c in cells},
            "command": command, "versions": versions()}


def _cell(stat: Optional[Dict[str, Any]], digits: int) -> str:
    if not stat:
        return "—"
    text = shown(stat["mean"], digits)
    return text if stat["std"] is None else f"{text} ± {shown(stat['std'], digits)}"


_VERSION_ORDER = ("python", "mcrf", "platform", *_PACKAGES)


def _in_order(table: Dict[str, Any], order: Sequence[str] = tuple(VARIANTS)) -> List[Tuple[str, Any]]:
    """``table``'s items in ``order`` (then the rest as they come): results.json is written with sorted keys,
    and a results.md rendered again from it must read like the one the comparison wrote."""
    rank = {name: i for i, name in enumerate(order)}
    return sorted(table.items(), key=lambda item: rank.get(item[0], len(rank)))


def render_markdown(results: Dict[str, Any]) -> str:
    """``results.md``: the variant table, the paired claims, the command line and the versions."""
    seeds = results["seeds"]
    sizes = results["sentences"]
    lines = [f"# Does masking help? {results['dataset']}, {results['encoder']} encoder", "",
             f"{len(seeds)} seed(s) ({', '.join(map(str, seeds))}); train/dev/test sentences "
             f"{sizes['train']}/{sizes['dev']}/{sizes['test']}. F1: strict span micro F1 in %, mean ± std over "
             "seeds. Illegal: share of sentences (%) whose raw decoder output breaks the scheme, before "
             "post-processing. Train speed: training sentences/s (dev evaluations excluded); predict: "
             "sentences/s decoding the test split (dev when there is no test).", "",
             "| variant | objective | dev F1 | test F1 | dev illegal % | test illegal % | train sent/s* | "
             "predict sent/s* |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, row in _in_order(results["variants"]):
        lines.append(f"| {row['title']} (`{name}`) | {row['objective']} | {_cell(row.get('dev_f1'), 2)} | "
                     f"{_cell(row.get('test_f1'), 2)} | {_cell(row.get('dev_illegal_path_rate'), 2)} | "
                     f"{_cell(row.get('test_illegal_path_rate'), 2)} | "
                     f"{_cell(row['train_sentences_per_second'], 1)} | "
                     f"{_cell(row['predict_sentences_per_second'], 1)} |")
    lines += ["", SPEED_NOTE]
    if results["pairs"]:
        lines += ["", "## Paired comparisons on the test split", "",
                  "ΔF1 in F1 points. p: two-sided approximate randomization over test sentences; CI: paired "
                  f"bootstrap 95% interval ({results['pairs'][0]['resamples']} resamples each).", "",
                  "| claim | ΔF1 per seed | mean ΔF1 | 95% CI | p |", "|---|---|---:|---:|---:|"]
        for pair in results["pairs"]:
            per_seed = ", ".join(shown(d, 2, sign=True) for d in pair["per_seed_delta"])
            low, high = pair["ci95"]
            lines.append(f"| {pair['claim']} | {per_seed} | {shown(pair['mean_delta'], 2, sign=True)} | "
                         f"[{shown(low, 2, sign=True)}, {shown(high, 2, sign=True)}] | "
                         f"{shown(pair['p_value'], 4)} |")
    found = verdicts(results)
    warnings = cautions(results)
    if found or warnings:
        lines += ["", "## Verdict", "", *(f"- {line}" for line in found)]
        if warnings:
            lines += ["", "Cautions:", "", *(f"- {line}" for line in warnings)]
    lines += ["", "## How these numbers were made", "", "```", results["command"] or "(library call)", "```", "",
              "Package versions: " + ", ".join(f"{k} {v}" for k, v in _in_order(results["versions"], _VERSION_ORDER))
              + ".", "",
              "Training settings shared by every cell (`decoder` and `seed` vary per cell):", "", "```json",
              json.dumps(results["train_config"], indent=1, sort_keys=True), "```", ""]
    return "\n".join(lines)


def render_summary_lines(results: Dict[str, Any], folder: Path) -> List[str]:
    """What ``mcrf compare`` prints at the end: where the results are, the verdicts and the cautions."""
    lines = [f"results: {folder / 'results.md'} (tables, command line, versions), results.json, results.png"]
    lines += verdicts(results)
    lines += [f"caution: {line}" for line in cautions(results)]
    return lines


def _plot(results: Dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    split = "test_f1" if all("test_f1" in r for r in results["variants"].values()) else "dev_f1"
    names = list(results["variants"])
    fig, axes = plt.subplots(1, 2 if results["pairs"] else 1, figsize=(11 if results["pairs"] else 6, 4),
                             squeeze=False)
    try:
        ax = axes[0][0]
        for i, name in enumerate(names):
            stat = results["variants"][name][split]
            ax.errorbar([i], [stat["mean"]], yerr=[stat["std"] or 0], fmt="o", color="C0", capsize=4)
            ax.scatter([i] * len(stat["per_seed"]), stat["per_seed"], color="C1", s=12, zorder=3)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_ylabel(f"{split.split('_')[0]} F1 (%)")
        ax.set_title(f"{results['dataset']}, {results['encoder']}: mean ± std, dots = seeds")
        if results["pairs"]:
            ax = axes[0][1]
            plot_deltas(ax, results["pairs"])
            ax.set_xticks(range(len(results["pairs"])), [f"{p['a']}\n− {p['b']}" for p in results["pairs"]])
            ax.set_ylabel("test ΔF1 (points)")
            ax.set_title("paired: mean, bootstrap 95% CI, dots = seeds")
        for row in axes:
            for axis in row:
                axis.grid(alpha=0.3)
        save_figure(fig, path)
    finally:
        plt.close(fig)


def plot_deltas(ax: Any, claims: Sequence[Dict[str, Any]]) -> None:
    """At x = 0, 1, ...: each claim's mean ΔF1 with its bootstrap 95% CI, and one dot per seed."""
    for i, claim in enumerate(claims):
        low, high = claim["ci95"]
        mean = claim["mean_delta"]
        ax.errorbar([i], [mean], yerr=[[mean - low], [high - mean]], fmt="s", color="C0", capsize=4,
                    label="mean, bootstrap 95% CI" if i == 0 else None)
        ax.scatter([i] * len(claim["per_seed_delta"]), claim["per_seed_delta"], color="C1", s=12, zorder=3,
                   label="one seed" if i == 0 else None)
    ax.axhline(0, color="grey", lw=0.8)


def save_figure(fig: Any, path: Path) -> None:
    """Lay out and write ``fig`` as a PNG through ``mcrf.io.outputs`` (atomic for a file)."""
    from mcrf.io.outputs import open_output

    fig.tight_layout()
    with open_output(path, binary=True) as stream:
        fig.savefig(stream, format="png", dpi=100)


def write_results(folder: Path, results: Dict[str, Any]) -> None:
    """Write ``results.json``, ``results.md`` and ``results.png`` into ``folder`` (each atomically)."""
    from mcrf.io.files import write_json
    from mcrf.io.outputs import save_text

    write_json(folder / "results.json", results)
    save_text(folder / "results.md", render_markdown(results))
    _plot(results, folder / "results.png")
