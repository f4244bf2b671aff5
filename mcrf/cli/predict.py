"""``mcrf predict``: tag text or CoNLL input with a saved model, streaming, in input order."""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from mcrf.errors import InputNotFound
from mcrf.cli.util import add_fields, build, given, load_tagger

logger = logging.getLogger(__name__)


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    from mcrf.predict.stream import PredictConfig

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
               "token_confidences; text = the line with [John Smith]{PER} markup; html = one self-contained page "
               "(entities highlighted, tokens shaded by confidence, a table of spans).")
    parser.add_argument("input", metavar="INPUT", help="text file (one sentence per line), CoNLL file, or - for stdin")
    parser.add_argument("--model", "-m", help="model folder, or the training output folder (`mcrf train --output`; "
                        "its model/ is used); default: $MCRF_MODEL")
    parser.add_argument("--output", "-o", metavar="FILE",
                        help="write here instead of stdout: a file is replaced atomically once all input is "
                             "tagged; a device, FIFO or terminal is written in place; never the input file")
    parser.set_defaults(func=_predict, fields=add_fields(parser, PredictConfig))


def _predict(args: argparse.Namespace) -> int:
    from mcrf.predict.formats import header, writer
    from mcrf.predict.html import describe_model
    from mcrf.models.locate import resolve_model
    from mcrf.io.outputs import check_output, check_stdout, open_output
    from mcrf.predict.stream import PredictConfig, predict_stream, read_input, set_mmap_threshold

    config = build(PredictConfig, **given(args, args.fields))
    if args.input != "-" and (not Path(args.input).exists() or Path(args.input).is_dir()):
        raise InputNotFound(f"input {args.input} is not a file; pass a text or CoNLL file, or - for stdin")
    if args.output is not None:  # refused before the model is loaded, not after
        check_output(args.output, inputs=[args.input])
    else:
        check_stdout(inputs=[args.input])
    if config.mmap_threshold is not None:
        logger.debug("glibc mmap threshold %d applied: %s", config.mmap_threshold,
                     set_mmap_threshold(config.mmap_threshold))
    model = resolve_model(args.model, verbose=getattr(args, "verbose", False))
    from mcrf.predict.distributed import launched_world, predict_sharded

    if launched_world() > 1:  # torchrun / accelerate launch: ranks tag blocks, rank 0 assembles --output
        return predict_sharded(args.input, args.output, config,
                               lambda device: load_tagger(model, device, config.quantize), model_name=str(model))
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
        out.write(header(config.output_format, describe_model(tagger, str(model))))
        for prediction in predict_stream(tagger, sentences, config.batch_size, config.chunk_batches, config.batch_words):
            write(prediction, out)
            count += 1
            bar.update(1)
        out.flush()
    if args.output is not None:
        logger.info("wrote %d sentences to %s", count, args.output)
    return 0
