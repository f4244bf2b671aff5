"""``mcrf convert``: an ``mcrf train`` model folder <-> a Hugging Face ``MaskedCRFForTokenClassification`` folder."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "convert", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="convert a model folder to Hugging Face's MaskedCRFForTokenClassification or back",
        description="Copy a tagger's weights between the two folder formats (the direction is read from SOURCE's "
                    "config.json). The Hugging Face folder loads with AutoModelForTokenClassification after "
                    "`import mcrf.hf`; both give the same tags. Only taggers with a Hugging Face encoder and a "
                    "CRF decoder convert.",
        epilog="examples:\n  mcrf convert runs/conll/model hf-conll\n  mcrf convert hf-conll runs/back/model")
    parser.add_argument("source", metavar="SOURCE", help="model folder, or a training output folder (its model/)")
    parser.add_argument("target", metavar="TARGET", help="new folder for the converted model")
    parser.set_defaults(func=_convert)


def _convert(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mcrf.hf.convert import convert
    from mcrf.models.locate import resolve_model

    source = Path(args.source)
    if source.is_dir() and not (source / "config.json").is_file():  # a training output folder: its model/
        source = resolve_model(source, verbose=getattr(args, "verbose", False))
    print(f"wrote {convert(source, args.target)}")
    return 0
