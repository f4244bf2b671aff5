"""``mcrf evaluate``: score a saved model on a dataset split (seqeval, span F1)."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from mcrf.errors import DataError
from mcrf.cli.util import add_fields, build, config_fields, given, load_tagger

logger = logging.getLogger(__name__)


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    from mcrf.data import LoadConfig
    from mcrf.evaluation import EvaluateConfig

    parser = commands.add_parser(
        "evaluate", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="score a saved tagger on a labelled dataset split",
        description="Strict span precision/recall/F1 per type, micro/macro averages, the illegal path rate "
                    "(share of raw decoder outputs that break the scheme) and sentences/s.",
        epilog="examples:\n  mcrf evaluate runs/sample/model sample\n"
               "  mcrf evaluate runs/conll/model conll2003 --data-dir ~/corpora --split dev --json")
    parser.add_argument("model", metavar="MODEL", nargs="?", help="model folder, or the training output folder "
                        "(`mcrf train --output`; its model/ is used); default: $MCRF_MODEL")
    parser.add_argument("dataset", metavar="DATASET", help="registered name, folder or file of labelled data")
    parser.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    fields = add_fields(parser, EvaluateConfig)
    load_fields = add_fields(parser, LoadConfig, [name for name in config_fields(LoadConfig) if name != "scheme"])
    parser.set_defaults(func=_evaluate, fields=fields, load_fields=load_fields)


def _evaluate(args: argparse.Namespace) -> int:
    from mcrf.data import LoadConfig, load_corpus
    from mcrf.evaluation import EvaluateConfig, evaluate, format_table
    from mcrf.models.locate import resolve_model
    from mcrf.crf.schemes import entity_types

    config = build(EvaluateConfig, **given(args, args.fields))
    load = build(LoadConfig, **given(args, args.load_fields))  # flag values checked before the model loads
    args.model = resolve_model(args.model, verbose=getattr(args, "verbose", False))
    tagger = load_tagger(args.model, config.device)
    corpus = load_corpus(args.dataset, config=load, used={config.split: None}, scheme=tagger.config.scheme)
    sentences = corpus.splits.get(config.split)
    if not sentences:
        available = sorted(name for name, split in corpus.splits.items() if split)
        raise DataError(f"dataset {args.dataset!r} has no {config.split!r} split; "
                        f"pass --split with one of {available}")
    unknown = sorted(set(entity_types(corpus.labels)) - set(entity_types(tagger.config.labels)))
    if unknown:
        logger.warning("gold entity types %s are not among the model's labels; they count as missed", unknown)
    result = evaluate(tagger, sentences, batch_size=config.batch_size)
    if args.json:
        print(json.dumps({"model": str(args.model), "dataset": args.dataset, "split": config.split,
                          **result.to_dict()}, indent=2))
    else:
        print(f"{args.model} on {args.dataset} ({config.split}):\n{format_table(result)}")
    return 0
