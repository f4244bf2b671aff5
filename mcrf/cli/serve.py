"""``mcrf serve``: flags from ``ServeConfig``, model loading, and the uvicorn run (``mcrf.serve.app``).

FastAPI and uvicorn are the optional ``serve`` extra; they are imported only when the command
runs, and their absence is one clear error naming the install command.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from mcrf.cli.util import add_fields, build, given, load_tagger
from mcrf.errors import ConfigError

__all__ = ["add_parser"]

logger = logging.getLogger(__name__)


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``mcrf serve`` on the sub-command parser ``commands``."""
    from mcrf.serve.config import ServeConfig

    parser = commands.add_parser(
        "serve", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="serve a saved tagger over HTTP (micro-batched), with a demo page",
        description="Serve a saved tagger over HTTP. Concurrent requests are gathered into micro-batches "
                    "(--max-batch sentences or --max-wait-ms, whichever comes first) and tagged by one worker "
                    "thread that owns the model. Needs the serve extra: pip install \"mcrf[serve]\".",
        epilog="endpoints:\n"
               "  POST /predict  {\"text\": \"...\"} | {\"texts\": [...]} | {\"tokens\": [[...]]} -> "
               "{\"results\": [record, ...]}\n"
               "                 (each record as in `mcrf predict --format jsonl`)\n"
               "  GET /health, GET /info, GET /stats, GET / (demo page)\n\n"
               "examples:\n"
               "  mcrf serve --model runs/sample/model\n"
               "  curl -s localhost:8080/predict -d '{\"text\": \"John Smith flew to Paris .\"}'\n"
               "SIGTERM answers the requests already received, then exits 0.")
    parser.add_argument("--model", "-m", help="model folder, or the training output folder (`mcrf train --output`; "
                        "its model/ is used); default: $MCRF_MODEL")
    parser.set_defaults(func=_serve, fields=add_fields(parser, ServeConfig))


def _serve(args: argparse.Namespace) -> int:
    from mcrf.serve.config import ServeConfig

    config = build(ServeConfig, **given(args, args.fields))
    try:
        from mcrf.serve.app import bind, serve
    except ImportError as error:
        raise ConfigError(f"mcrf serve needs FastAPI and uvicorn ({error}); install them with "
                          "pip install \"mcrf[serve]\"") from None
    if config.mmap_threshold is not None:
        from mcrf.predict.stream import set_mmap_threshold

        logger.debug("glibc mmap threshold %d applied: %s", config.mmap_threshold,
                     set_mmap_threshold(config.mmap_threshold))
    from mcrf.models.locate import resolve_model

    model = resolve_model(args.model, verbose=getattr(args, "verbose", False))
    tagger = load_tagger(model, config.device, config.quantize)
    try:
        sock = bind(config.host, config.port)
    except OSError as error:
        raise ConfigError(f"cannot listen on {config.host}:{config.port} ({error.strerror or error}); "
                          "pass another --port or --host") from None
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    logger.info("mcrf serve: %s on http://%s:%d (demo page at /, POST /predict)", model, shown, port)
    serve(tagger, config, sock)
    logger.info("mcrf serve: stopped")
    return 0
