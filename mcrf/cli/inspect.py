"""``mcrf inspect``: what a dataset holds (sizes, tags, scheme, problems) without training."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from mcrf.cli.util import add_fields, load_dataset

logger = logging.getLogger(__name__)


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    from mcrf.data import LoadConfig

    parser = commands.add_parser(
        "inspect", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="statistics of a dataset as training would load it",
        description="Load a dataset exactly as training does and print per split: sentences, tokens, labels, "
                    "scheme, entities per type and illegal gold sequences (with file:line) and what the policy did.",
        epilog="examples:\n  mcrf inspect sample\n  mcrf inspect conll2003 --data-dir ~/corpora --scheme BIOES\n"
               "  mcrf inspect path/to/folder --json")
    parser.add_argument("dataset", metavar="DATASET", help="registered name, folder, file or hub id")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.set_defaults(func=_inspect, load_fields=add_fields(parser, LoadConfig))


def _inspect(args: argparse.Namespace) -> int:
    from mcrf.data import format_inspection, inspect_corpus

    info = inspect_corpus(load_dataset(args.dataset, args))
    print(json.dumps(info, indent=2, ensure_ascii=False) if args.json else format_inspection(info))
    return 0
