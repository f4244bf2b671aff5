"""The ``mcrf`` command line: the parser over ``COMMANDS``, ``main`` and its exit codes (``python -m mcrf`` too).

A thin layer: each command maps its flags onto a config dataclass (``TrainConfig``,
``LoadConfig``, ``PredictConfig`` — the only holders of defaults), calls the library and prints.
Logging is configured here and nowhere else. Exit codes: 0 success, 2 usage errors (bad flags or
flag values), 1 other failures. User errors (missing files, unknown datasets, bad data) print one
message on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
import traceback
from contextlib import contextmanager
from importlib import import_module
from typing import Iterator, List, Optional

from mcrf import __version__
from mcrf.errors import UserError
from mcrf.cli.util import MAX_THREADS, configure_logging, thread_count

__all__ = ["COMMANDS", "main", "build_parser"]

#: the sub-commands, in the order ``mcrf --help`` lists them; each is a module ``mcrf.cli.<name>``
#: with ``add_parser(commands, common)``, which sets the parser's ``func``
COMMANDS = ("train", "evaluate", "predict", "inspect", "compare", "serve", "convert")

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    """The ``mcrf`` argument parser with its sub-commands (``COMMANDS``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and debug logging")
    common.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                        help="only warnings and errors on stderr")
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="also say how inputs were resolved (which model folder of a training run is used)")
    common.add_argument("--threads", type=thread_count, default=argparse.SUPPRESS, metavar="N",
                        help=f"CPU threads for torch, 1 to {MAX_THREADS} (default: torch's choice, one per core); "
                             "on a busy machine, --threads 1 or the environment variable OMP_WAIT_POLICY=PASSIVE "
                             "avoids spinning threads that slow everything down")
    parser = argparse.ArgumentParser(
        prog="mcrf", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"Masked CRF sequence labeling: {', '.join(COMMANDS)}.",
        epilog="quickstart:\n  mcrf train sample --output runs/sample\n"
               "  echo \"John Smith flew to Paris .\" | mcrf predict - --model runs/sample/model\n\n"
               "`mcrf COMMAND --help` shows each command's flags and examples.")
    parser.add_argument("--version", action="version", version=f"mcrf {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        import_module(f"mcrf.cli.{command}").add_parser(commands, common)
    return parser


#: exit code of an exception that is not a ``UserError``: a bug in mcrf, not the user's input
EXIT_INTERNAL = 3
#: exit code when the reader of standard output went away (``mcrf predict ... | head -1``): quietly, with the
#: code a shell reports for a tool killed by SIGPIPE (``yes | head -1``), so ``set -o pipefail`` still sees it
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
#: errno values of ``OSError`` that the machine raises, not mcrf (full disk, permissions, read-only)
_SYSTEM_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EMFILE,
                            errno.ENFILE, errno.EIO})


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``mcrf`` with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Exit codes: 0 success; 1 a user error (``mcrf.errors.UserError``: bad data, paths, model
    folders; or the machine refused: disk full, permission denied); 2 a usage error (bad flags
    or flag values, ``ConfigError``); 3 an internal error, i.e. any other exception: a bug in
    mcrf, printed as one line asking for a report (``--debug`` shows the traceback); 130
    interrupted (Ctrl-C, at any point: while torch is still being imported it exits quietly); 143/129
    terminated by SIGTERM/SIGHUP (after the same clean-up as Ctrl-C: no temporary is left); 141 the
    reader of standard output went away (``| head -1``), without a message.
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
        with _terminations_unwind():
            return args.func(args)
    except Terminated as stop:
        print(f"{prog}: terminated ({signal.Signals(stop.signum).name})", file=sys.stderr)
        return 128 + stop.signum
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


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived while a command ran: unwinds like Ctrl-C, so every ``with`` block cleans up.

    A ``KeyboardInterrupt`` so that whatever cleans up after Ctrl-C (the output writer removing its
    temporary, the run-folder lock) does the same here; ``main`` exits with ``128 + signum``.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _terminations_unwind() -> Iterator[None]:
    """While a command runs, SIGTERM and SIGHUP raise ``Terminated`` instead of killing the process at once.

    Killed outright, ``mcrf predict -o out.txt`` would leave its hidden temporary beside ``out.txt``
    until the next write there. A signal the caller ignores (``nohup`` ignores SIGHUP) stays ignored,
    and the previous handlers come back afterwards (``main`` may run inside another program).
    """
    def terminate(signum: int, _frame) -> None:
        raise Terminated(signum)

    previous = {}
    try:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is signal.SIG_DFL:
                previous[signum] = signal.signal(signum, terminate)
    except ValueError:  # not the main thread: signals cannot be handled here
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _report(prog: str, error: Exception, debug: bool) -> int:
    """Print ``error`` as one line (the traceback first with ``--debug``); return the exit code."""
    if isinstance(error, BrokenPipeError):  # `mcrf predict ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return EXIT_BROKEN_PIPE
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
