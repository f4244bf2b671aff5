"""``mcrf compare``: does masking help on this corpus? (and ``--summarize`` over many comparisons).

Its own flags come from ``CompareConfig``; every training flag of ``mcrf train`` applies too
(the same generated flags), except those compare sets per cell (``--decoder``, ``--postprocess``,
``--seed``, ``--resume``, ``--overwrite``) and ``--output``, which names the comparison's folder.
"""

from __future__ import annotations

import argparse
import os
import shlex
from typing import Any, List

from mcrf.cli.util import UsageError, add_encoder_options, add_fields, build, encoder_options, given

__all__ = ["add_parser"]


def _train_flags() -> List[str]:
    """The ``mcrf train`` flags compare takes: all but those each cell sets itself (``--output`` is compare's own)."""
    from mcrf.cli.util import config_fields
    from mcrf.compare.cells import SET_PER_CELL
    from mcrf.training.config import TrainConfig

    return [name for name in config_fields(TrainConfig) if name not in SET_PER_CELL]


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``mcrf compare`` on the CLI's sub-command parsers."""
    from mcrf.compare import CompareConfig
    from mcrf.training.config import TrainConfig

    parser = commands.add_parser(
        "compare", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="does masking help? train crf/mcrf/softmax per seed, decode 6 ways, paired statistics",
        description="Train each objective (crf, mcrf, softmax) once per seed, decode each variant (softmax/CRF + "
                    "retain/discard, MCRF-decoding, MCRF), and write results.md/json/png to OUTPUT: F1 mean ± "
                    "std, illegal path rates, speeds, per-seed deltas and paired p-values. Re-run the same "
                    "command to continue an interrupted comparison: finished (objective, seed) cells are kept.",
        epilog="examples:\n  mcrf compare sample --seeds 1,2 --output runs/compare-sample\n"
               "  mcrf compare atis --data-dir ~/corpora --encoder bilstm --lr 3e-3 --head-lr 3e-3 --patience none "
               "--output runs/atis-bilstm   (the settings of docs/results/atis-bilstm)\n"
               "  mcrf compare --summarize docs/results")
    parser.add_argument("dataset", metavar="DATASET", nargs="?",
                        help="registered name, folder or hub id, as for `mcrf train`")
    parser.add_argument("--summarize", metavar="DIR", default=argparse.SUPPRESS,
                        help="instead: write DIR/README.md and DIR/summary.png over the comparisons in DIR/*/ (and "
                             "re-render each DIR/*/results.md from its results.json)")
    fields, train_fields = add_fields(parser, CompareConfig), add_fields(parser, TrainConfig, _train_flags())
    parser.set_defaults(func=_compare, fields=fields, train_fields=train_fields,
                        encoder_fields=add_encoder_options(parser, taken=fields + train_fields))


def _command(args: argparse.Namespace, names: List[str]) -> str:
    """The command line that reproduces ``args`` (flags in a fixed order, only those given)."""
    from mcrf.cli.util import flag

    words = ["mcrf", "compare", _as_typed(args.dataset)]
    if hasattr(args, "threads"):
        words += ["--threads", str(args.threads)]
    for name in names:
        if not hasattr(args, name):
            continue
        value = getattr(args, name)
        if value is False:  # a switch that is on by default
            words.append(f"--no-{name.replace('_', '-')}")
        elif value is True:
            words.append(flag(name))
        elif name == "seeds":
            words += [flag(name), ",".join(map(str, value))]
        else:
            words += [flag(name), "none" if value is None else _as_typed(str(value))]
    return " ".join(word if word.startswith("~/") and shlex.quote(word[2:]) == word[2:] else shlex.quote(word)
                    for word in words)


def _as_typed(value: str) -> str:
    """A path under the home folder as the user most likely typed it: the shell turned ``~/corpora`` into
    ``/home/me/corpora``, which would record the user's name and machine layout in results.md."""
    home = os.path.expanduser("~")
    if os.path.isabs(value) and home not in ("", "/") and value.startswith(home.rstrip("/") + "/"):
        return "~/" + value[len(home.rstrip("/")) + 1:]
    return value


def _compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mcrf.compare import CompareConfig, compare
    from mcrf.compare.report import render_summary_lines

    if hasattr(args, "summarize"):
        if args.dataset is not None:
            raise UsageError("pass either DATASET (run a comparison) or --summarize DIR, not both")
        from mcrf.compare.summary import summarize

        path = summarize(args.summarize)
        print(f"wrote {path} and its figure; re-rendered each comparison's results.md from its results.json")
        return 0
    if args.dataset is None:
        raise UsageError("expected DATASET (e.g. sample, conll2003, a folder) or --summarize DIR")
    config = build(CompareConfig, dataset=args.dataset, **given(args, args.fields),
                   train={**given(args, args.train_fields), **encoder_options(args)})
    results = compare(config, command=_command(args, args.fields + args.train_fields + args.encoder_fields))
    print("\n".join(render_summary_lines(results, Path(config.output_dir))))
    return 0
