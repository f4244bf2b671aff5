"""``benchmarks/gpu.py --smoke --device cpu`` runs end to end (tiny shapes, a tiny random BERT): the GPU
script is exercised on every CI run, so the one device call it is written for does not fail on a typo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_gpu_benchmark_runs_on_cpu_in_smoke_mode():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--smoke", "--device", "cpu"],
                         capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    for heading in ("## CRF against pytorch-crf", "## Train step per decoder", "## Synchronising calls",
                    "## Loop and predict"):
        assert heading in text, text
    for decoder in ("softmax", "crf", "mcrf"):  # one synchronising-call row per decoder, none in mcrf's code
        row = next(line for line in text.splitlines() if line.startswith(f"| {decoder} |") and line.count("|") == 5)
        assert row.split("|")[3].strip() == "0", row
