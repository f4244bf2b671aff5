"""The ``mcrf`` command line: one module per command over importable functions.

``main`` is the console script (``mcrf = mcrf.cli:main``); ``app`` builds the parser and maps
exceptions to exit codes; ``util`` generates flags from config dataclasses.
"""

from mcrf.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
