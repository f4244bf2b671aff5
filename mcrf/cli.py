"""The ``mcrf`` command line: ``train``, ``evaluate``, ``predict``, ``inspect`` (``python -m mcrf`` too).

A thin layer: each command maps its flags onto a config dataclass (``TrainConfig``,
``LoadConfig``, ``PredictConfig`` — the only holders of defaults), calls the library and prints.
Logging is configured here and nowhere else. Exit codes: 0 success, 2 usage errors (bad flags or
flag values), 1 other failures. User errors (missing files, unknown datasets, bad data) print one
message on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import sys
import traceback
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator, List, Optional

from mcrf import __version__
from mcrf.errors import DataError, InputNotFound, UserError
from mcrf.cli_util import (add_fields, build, config_fields, configure_logging, given, load_tagger,
                           positive_int)

__all__ = ["main", "build_parser"]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- train
def _add_train(commands: Any, common: argparse.ArgumentParser) -> None:
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
               "  mcrf train sample --output runs/sample --resume")
    parser.add_argument("dataset", metavar="DATASET",
                        help="registered name (sample, conll2003, ...), a folder of train/dev/test files, or a hub id")
    parser.set_defaults(func=_train, fields=add_fields(parser, TrainConfig))


def _train(args: argparse.Namespace) -> int:
    from mcrf.evaluation import EvalResult, format_table
    from mcrf.training import TrainConfig, train

    config = build(TrainConfig.for_dataset, dataset=args.dataset, **given(args, args.fields))
    result = train(config)
    for split in ("dev", "test"):
        metrics = result.metrics.get(split)
        if metrics:
            print(f"\n{split} ({config.dataset}):\n{format_table(EvalResult(**metrics))}")
    print(f"\nmodel saved to {result.model_dir}  (best step {result.best_step} of {result.global_step})")
    print(f"try it: echo \"Helga Eriksen joined Aurora Energy in Berlin .\" | mcrf predict - --model {result.model_dir}")
    return 0


# ---------------------------------------------------------------------------- data flags
def _load(dataset: str, args: argparse.Namespace):
    from mcrf.data import LoadConfig, load_corpus

    return load_corpus(dataset, config=build(LoadConfig, **given(args, args.load_fields)))


# ---------------------------------------------------------------------------- evaluate
def _add_evaluate(commands: Any, common: argparse.ArgumentParser) -> None:
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
    from mcrf.schemes import entity_types

    config = build(EvaluateConfig, **given(args, args.fields))
    load = build(LoadConfig, **given(args, args.load_fields))  # flag values checked before the model loads
    args.model = resolve_model(args.model, verbose=getattr(args, "verbose", False))
    tagger = load_tagger(args.model, config.device)
    corpus = load_corpus(args.dataset, config=load, scheme=tagger.config.scheme)
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


# ---------------------------------------------------------------------------- inspect
def _add_inspect(commands: Any, common: argparse.ArgumentParser) -> None:
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

    info = inspect_corpus(_load(args.dataset, args))
    print(json.dumps(info, indent=2, ensure_ascii=False) if args.json else format_inspection(info))
    return 0


# ---------------------------------------------------------------------------- predict
def _add_predict(commands: Any, common: argparse.ArgumentParser) -> None:
    from mcrf.predict import PredictConfig

    parser = commands.add_parser(
        "predict", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="tag text with a saved model (streams; output order = input order)",
        description="Tag INPUT with a saved model. Streams: memory stays flat whatever the input size, every "
                    "input line (empty ones included) gives one output record, every word gets one tag.",
        epilog="examples:\n"
               "  echo \"John Smith flew to Paris .\" | mcrf predict - --model runs/sample/model\n"
               "  mcrf predict news.txt --model runs/sample/model --format jsonl --output news.jsonl\n"
               "  MCRF_MODEL=runs/sample mcrf predict news.txt   (a training output folder: its model/)\n"
               "  mcrf predict eng.testb --input-format conll --model runs/conll/model --format text\n\n"
               "formats: conll = token<TAB>tag lines and a blank line per sentence; jsonl = one object per line "
               "with text, tokens, tags, spans (label, start, end, char_start, char_end, text, confidence), "
               "token_confidences; text = the line with [John Smith]{PER} markup.")
    parser.add_argument("input", metavar="INPUT", help="text file (one sentence per line), CoNLL file, or - for stdin")
    parser.add_argument("--model", "-m", help="model folder, or the training output folder (`mcrf train --output`; "
                        "its model/ is used); default: $MCRF_MODEL")
    parser.add_argument("--output", "-o", metavar="FILE",
                        help="write here instead of stdout: a file is replaced atomically once all input is "
                             "tagged; a device, FIFO or terminal is written in place; never the input file")
    parser.set_defaults(func=_predict, fields=add_fields(parser, PredictConfig))


def _predict(args: argparse.Namespace) -> int:
    from mcrf.formats import header, writer
    from mcrf.models.locate import resolve_model
    from mcrf.outputs import check_output, open_output
    from mcrf.predict import PredictConfig, predict_stream, read_input, set_mmap_threshold

    config = build(PredictConfig, **given(args, args.fields))
    if args.input != "-" and (not Path(args.input).exists() or Path(args.input).is_dir()):
        raise InputNotFound(f"input {args.input} is not a file; pass a text or CoNLL file, or - for stdin")
    if args.output is not None:  # refused before the model is loaded, not after
        check_output(args.output, inputs=[args.input])
    if config.mmap_threshold is not None:
        logger.debug("glibc mmap threshold %d applied: %s", config.mmap_threshold,
                     set_mmap_threshold(config.mmap_threshold))
    model = resolve_model(args.model, verbose=getattr(args, "verbose", False))
    from mcrf.predict_dist import launched_world, predict_sharded

    if launched_world() > 1:  # torchrun / accelerate launch: ranks tag blocks, rank 0 assembles --output
        return predict_sharded(args.input, args.output, config,
                               lambda device: load_tagger(model, device, config.quantize))
    tagger = load_tagger(model, config.device, config.quantize)
    sentences = read_input(args.input, config.input_format, config.encoding)
    write = writer(config.output_format)
    if args.input == "-" and sys.stdin.isatty():
        logger.info("reading sentences from the terminal, one per line; end with Ctrl-D")
    from tqdm import tqdm

    target = open_output(args.output, inputs=[args.input]) if args.output is not None else nullcontext(sys.stdout)
    count = 0
    with tqdm(unit=" sentences", file=sys.stderr, disable=not sys.stderr.isatty(), dynamic_ncols=True) as bar, \
            target as out:
        out.write(header(config.output_format))
        for prediction in predict_stream(tagger, sentences, config.batch_size, config.chunk_batches):
            write(prediction, out)
            count += 1
            bar.update(1)
        out.flush()
    if args.output is not None:
        logger.info("wrote %d sentences to %s", count, args.output)
    return 0


# ---------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    """The ``mcrf`` argument parser with its four sub-commands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and debug logging")
    common.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                        help="only warnings and errors on stderr")
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="also say how inputs were resolved (which model folder of a training run is used)")
    common.add_argument("--threads", type=positive_int, default=argparse.SUPPRESS, metavar="N",
                        help="CPU threads for torch (default: torch's choice, one per core); on a busy "
                             "machine, --threads 1 or the environment variable OMP_WAIT_POLICY=PASSIVE "
                             "avoids spinning threads that slow everything down")
    parser = argparse.ArgumentParser(
        prog="mcrf", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Masked CRF sequence labeling: train, evaluate, predict, inspect.",
        epilog="quickstart:\n  mcrf train sample --output runs/sample\n"
               "  echo \"John Smith flew to Paris .\" | mcrf predict - --model runs/sample/model\n\n"
               "`mcrf COMMAND --help` shows each command's flags and examples.")
    parser.add_argument("--version", action="version", version=f"mcrf {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(commands, common)
    _add_evaluate(commands, common)
    _add_predict(commands, common)
    _add_inspect(commands, common)
    from mcrf.cli_serve import add_serve

    add_serve(commands, common)
    from mcrf.cli_compare import add_compare

    add_compare(commands, common)
    return parser


#: exit code of an exception that is not a ``UserError``: a bug in mcrf, not the user's input
EXIT_INTERNAL = 3
#: errno values of ``OSError`` that the machine raises, not mcrf (full disk, permissions, read-only)
_SYSTEM_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EMFILE,
                            errno.ENFILE, errno.EIO})


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``mcrf`` with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Exit codes: 0 success; 1 a user error (``mcrf.errors.UserError``: bad data, paths, model
    folders; or the machine refused: disk full, permission denied); 2 a usage error (bad flags
    or flag values, ``ConfigError``); 3 an internal error, i.e. any other exception: a bug in
    mcrf, printed as one line asking for a report (``--debug`` shows the traceback); 130
    interrupted (Ctrl-C, at any point: while torch is still being imported it exits quietly).
    """
    # OpenMP reads this when torch first loads it (only effective if nothing imported torch yet):
    # spinning worker threads make small models 10-30x slower on a busy, shared CPU.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    debug, prog = "--debug" in argv, "mcrf"
    try:
        with _quiet_interrupts():
            parser = build_parser()
            try:
                args = parser.parse_args(argv)
            except SystemExit as stop:  # --help, --version and argparse usage errors
                return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
            if args.command is None:
                parser.print_help(sys.stderr)
                return 2
            import numpy  # noqa: F401 - torch imports it; both here, where Ctrl-C cannot leave them half-imported
            import torch

        configure_logging(debug, getattr(args, "quiet", False))
        prog = f"mcrf {args.command}"
        if hasattr(args, "threads"):
            torch.set_num_threads(args.threads)
        return args.func(args)
    except KeyboardInterrupt:
        if prog != "mcrf":  # before a command started (imports, parsing) quietly, like the shell's ^C
            print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - every exception ends as one line and an exit code
        return _report(prog, error, debug)


@contextmanager
def _quiet_interrupts() -> Iterator[None]:
    """Ctrl-C exits at once with 130 and no output while the CLI starts (parsing, importing torch).

    A ``KeyboardInterrupt`` raised inside an import can leave a module half-initialised (numpy
    inside torch's import swallows it, and a later import fails with a ``RecursionError``); before
    a command has started there is nothing to clean up, so the process just ends. An ignored SIGINT
    (a background job of a script inherits one) stays ignored.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # `mcrf ... &` in a script, nohup: the shell's choice
        yield
        return
    try:
        previous = signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _report(prog: str, error: Exception, debug: bool) -> int:
    """Print ``error`` as one line (the traceback first with ``--debug``); return the exit code."""
    if isinstance(error, BrokenPipeError):  # `mcrf predict ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    if debug:
        traceback.print_exc()
    if isinstance(error, UserError):
        usage = f"\nsee `{prog} --help`" if error.exit_code == 2 else ""
        print(f"{prog}: error: {error}{usage}", file=sys.stderr)
        return error.exit_code
    if isinstance(error, OSError) and error.errno in _SYSTEM_ERRNOS:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    if isinstance(error, MemoryError):
        print(f"{prog}: error: out of memory ({error or 'MemoryError'}); lower --batch-size or use a machine with "
              "more memory", file=sys.stderr)
        return 1
    text = " ".join(str(error).split())
    text = f"{type(error).__name__}: {text[:300] + '...' if len(text) > 300 else text}".rstrip(": ")
    print(f"{prog}: internal error: {text} (rerun with --debug for the traceback; please report it)",
          file=sys.stderr)
    return EXIT_INTERNAL
