"""The examples run as documented."""

from __future__ import annotations

import runpy
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_custom_tagger_example_trains_and_decodes_legal_paths(capsys):
    runpy.run_path(str(EXAMPLES / "custom_tagger.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "4/4 training sentences tagged exactly" in out
