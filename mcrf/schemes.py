"""Moved to ``mcrf.crf.schemes`` (and the span functions to ``mcrf.crf.spans``); this alias keeps
``import mcrf.schemes`` working (deprecated)."""

import warnings

from mcrf.crf.schemes import *  # noqa: F401,F403 - the old import path re-exports the new modules
from mcrf.crf.schemes import __all__ as _schemes_all
from mcrf.crf.spans import *  # noqa: F401,F403
from mcrf.crf.spans import __all__ as _spans_all

__all__ = [*_schemes_all, *_spans_all]

warnings.warn("mcrf.schemes moved to mcrf.crf.schemes (spans, repair and convert: mcrf.crf.spans); import it from "
              "there", DeprecationWarning, stacklevel=2)
