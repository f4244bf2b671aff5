"""``mcrf train``: train a tagger on a dataset, evaluate it and save it."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from mcrf.cli.util import add_encoder_options, add_fields, build, encoder_options, given, resolve_device

logger = logging.getLogger(__name__)


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    from mcrf.training.config import PRESETS, TrainConfig

    presets = "\n".join(f"  {name} preset: " + ", ".join(f"{k}={v}" for k, v in values.items())
                        for name, values in PRESETS.items())
    parser = commands.add_parser(
        "train", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="train a tagger on a dataset, evaluate it and save it",
        description="Train a tagger, evaluate the best checkpoint on dev and test, and save it to OUTPUT/model.",
        epilog="Settings are resolved in layers: the defaults, then the encoder's recommendations (learning "
               "rates, decay,\nwarmup, clipping, epochs, the sub-word window), then the dataset preset, then "
               "your flags; the\nsettings header at the start of training shows each value with its source.\n"
               f"{presets}\n\nexamples:\n"
               "  mcrf train sample --output runs/sample\n"
               "  mcrf train conll2003 --data-dir ~/corpora --encoder bert-base-cased --output runs/conll\n"
               "  mcrf train path/to/folder --scheme BIOES --decoder crf --epochs 5\n"
               "  mcrf train sample --output runs/sample --resume\n\n"
               "On several GPUs (data parallel, one process per GPU, each taking the GPU of its local rank):\n"
               "  accelerate launch --multi_gpu --num_processes 2 -m mcrf train conll2003 --output runs/conll\n"
               "  torchrun --nproc_per_node 2 -m mcrf train conll2003 --output runs/conll\n"
               "--batch-size is per process; only the first process writes the run folder and prints.")
    parser.add_argument("dataset", metavar="DATASET",
                        help="registered name (sample, conll2003, ...), a folder of train/dev/test files, or a hub id")
    fields = add_fields(parser, TrainConfig)
    parser.set_defaults(func=_train, fields=fields, encoder_fields=add_encoder_options(parser, taken=fields))


def _train(args: argparse.Namespace) -> int:
    from mcrf.evaluation import EvalResult, format_table
    from mcrf.training import TrainConfig, train

    flags = given(args, args.fields)
    if flags.get("device") is not None:
        flags["device"] = resolve_device(flags["device"])
    config = build(TrainConfig.for_dataset, dataset=args.dataset, **flags, **encoder_options(args))
    result = train(config, progress=False if getattr(args, "quiet", False) else None)
    if int(os.environ.get("RANK", "0")) != 0:  # one of several processes (torchrun, accelerate launch)
        return 0
    for split in ("dev", "test"):
        metrics = result.metrics.get(split)
        if metrics:
            print(f"\n{split} ({config.dataset}):\n{format_table(EvalResult(**metrics))}")
    print(f"\nmodel saved to {result.model_dir}  (best step {result.best_step} of {result.global_step})")
    print(f"try it: echo \"Helga Eriksen joined Aurora Energy in Berlin .\" | mcrf predict - --model {result.model_dir}")
    return 0
