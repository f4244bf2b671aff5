"""Moved to ``mcrf.crf.schemes``; this alias keeps ``import mcrf.schemes`` working (deprecated)."""

import warnings

from mcrf.crf.schemes import *  # noqa: F401,F403 - the old import path re-exports the new module
from mcrf.crf.schemes import __all__  # noqa: F401

warnings.warn("mcrf.schemes moved to mcrf.crf.schemes; import it from there", DeprecationWarning, stacklevel=2)
