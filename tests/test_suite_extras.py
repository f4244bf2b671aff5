"""The suite cannot shrink silently: tests that need no extra run without it, and where the extras
must be installed (CI: ``MCRF_REQUIRE_EXTRAS=1``) a missing one is an error, not a skip."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from extras import data_dir

ROOT = Path(__file__).resolve().parents[1]


def _pytest_without(tmp_path: Path, module: str, *args: str, require: bool = False) -> subprocess.CompletedProcess:
    """Run pytest on ``args`` in a child where importing ``module`` fails, as if it were not installed."""
    blocker = tmp_path / "blocker"
    blocker.mkdir(exist_ok=True)
    (blocker / f"{module}.py").write_text(f"raise ImportError('{module} is blocked by the test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)]), "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1"}
    env.pop("MCRF_REQUIRE_EXTRAS", None)
    if require:
        env["MCRF_REQUIRE_EXTRAS"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                           "--rootdir", str(ROOT), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def _counts(output: str) -> dict:
    return {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|skipped|failed|errors?)", output)}


def test_the_brute_force_crf_tests_run_without_pytorch_crf(tmp_path):
    """Issue 18: a module-level importorskip("torchcrf") dropped every brute-force test with it."""
    chosen = ["tests/test_crf.py::test_likelihood_best_path_kbest_and_marginals_match_brute_force[scan-mcrf-BIO]",
              "tests/test_crf.py::test_mcrf_puts_no_mass_on_illegal_paths_but_crf_does",
              "tests/test_crf.py::test_decode_matches_pytorch_crf_on_many_random_batches"]
    done = _pytest_without(tmp_path, "torchcrf", *chosen)
    counts = _counts(done.stdout)
    assert done.returncode == 0 and counts.get("passed", 0) >= 2 and counts.get("skipped") == 2, done.stdout[-3000:]
    required = _pytest_without(tmp_path, "torchcrf", *chosen, require=True)
    counts = _counts(required.stdout)
    assert required.returncode == 1 and counts.get("failed") == 2 and "MCRF_REQUIRE_EXTRAS is set" in required.stdout, \
        required.stdout[-3000:]


def test_the_serve_tests_skip_without_fastapi_unless_the_extras_are_required(tmp_path):
    done = _pytest_without(tmp_path, "fastapi", "tests/test_serve.py", "-rs")
    assert done.returncode in (0, 5) and "fastapi is not installed" in done.stdout, done.stdout[-3000:]
    assert "passed" not in done.stdout and "skipped" in done.stdout
    required = _pytest_without(tmp_path, "fastapi", "tests/test_serve.py", require=True)
    assert required.returncode != 0 and "fastapi is not installed" in required.stdout, required.stdout[-3000:]
    assert "error" in required.stdout.lower() and "MCRF_REQUIRE_EXTRAS is set" in required.stdout


def test_the_real_corpora_come_from_mcrf_data_dir_when_set(tmp_path, monkeypatch):
    monkeypatch.setenv("MCRF_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    monkeypatch.setenv("MCRF_DATA_DIR", str(tmp_path / "absent"))
    assert data_dir() == ROOT.parent / "shared" / "data"
    monkeypatch.delenv("MCRF_DATA_DIR")
    assert data_dir() == ROOT.parent / "shared" / "data"


def test_ci_requires_the_extras_before_the_quickstart_runs_the_suite():
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert script.index("export MCRF_REQUIRE_EXTRAS=1") < script.index('for cmd in "${commands[@]}"')
