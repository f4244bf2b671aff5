"""The sample corpus ships as package data (issue 10 item 7) and the declared Python (item 6).

The corpus lives in ``mcrf/data/sample/`` and is read with ``importlib.resources``, so it is found
from a zip archive too (tested here), and from an installed wheel, outside the source tree (the
``slow`` test builds the wheel with ``pip wheel``, installs it into a fresh virtual environment and
runs ``mcrf inspect sample`` there).
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

import mcrf
from mcrf.data.registry import sample_dir

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_COUNTS = {"train": (600, 7576), "dev": (150, 1901), "test": (150, 1845)}  # data/README.md
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MCRF_DATA_DIR")}


def _sources(dest: Path) -> Path:
    """A copy of the tracked source tree (a build must not litter the checkout with build/ and egg-info)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True)
    names = [n for n in listed.stdout.decode().split("\0") if n] if listed.returncode == 0 else []
    if not names:  # not a git checkout: everything but caches and environments
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info",
                                                                  "__pycache__", ".hypothesis", "runs"))
        return dest
    for name in names:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def test_sample_is_package_data_of_mcrf_data():
    folder = sample_dir()
    assert Path(str(folder)) == Path(mcrf.__file__).parent / "data" / "sample"
    assert sorted(p.name for p in folder.iterdir() if p.name.endswith(".txt")) == ["dev.txt", "test.txt", "train.txt"]
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert setup["options.package_data"]["mcrf.data"].strip() == "sample/*.txt"
    assert "options.data_files" not in setup  # <prefix>/share broke --user installs, zipapps, containers


def test_generator_writes_the_packaged_files_byte_for_byte(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "data" / "make_sample.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for name in ("train.txt", "dev.txt", "test.txt"):
        assert (tmp_path / name).read_bytes() == (sample_dir() / name).read_bytes()
    assert "mcrf/data/sample" in (ROOT / "data" / "make_sample.py").read_text()  # its default --out


def test_sample_loads_from_a_zip_archive(tmp_path):
    archive = tmp_path / "mcrf.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in (ROOT / "mcrf").rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, path.relative_to(ROOT).as_posix())
    code = ("import json, mcrf\nfrom mcrf.data import load_corpus\nc = load_corpus('sample')\n"
            "print(json.dumps([mcrf.__file__, {k: [len(v), sum(len(s.tokens) for s in v)] "
            "for k, v in c.splits.items()}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={**CLEAN_ENV, "PYTHONPATH": str(archive)}, timeout=300)
    assert done.returncode == 0, done.stderr
    where, counts = json.loads(done.stdout)
    assert where.startswith(str(archive)) and {k: tuple(v) for k, v in counts.items()} == SAMPLE_COUNTS


def test_python_310_is_declared_everywhere():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert setup["options"]["python_requires"].strip() == ">=3.10"
    versions = re.findall(r"Python :: (3\.\d+)", setup["metadata"]["classifiers"])
    assert versions and min(versions, key=lambda v: int(v.split(".")[1])) == "3.10"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "Python ≥ 3.10" in readme and not re.search(r"Python\s*(≥|>=)\s*3\.[0-9]\b", readme)
    assert sys.version_info >= (3, 10)


@pytest.mark.slow
def test_wheel_installs_and_inspects_the_sample_outside_the_source_tree(tmp_path):
    src = _sources(tmp_path / "src")
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                            "-w", str(wheels), "-q"], capture_output=True, text=True, timeout=600, env=CLEAN_ENV)
    assert build.returncode == 0, build.stderr
    [wheel] = wheels.glob("mcrf-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"mcrf/data/sample/{n}.txt" for n in ("train", "dev", "test")} <= set(names)
    assert not [n for n in names if ".data/" in n]  # no data_files (<prefix>/share) any more

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                              "--no-index", "-q", str(wheel)], capture_output=True, text=True, timeout=600,
                             env=CLEAN_ENV)
    assert install.returncode == 0, install.stderr
    # The dependencies (torch, ...) come from this environment, *after* the venv's own site-packages,
    # so `import mcrf` finds the installed wheel, never this checkout.
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = subprocess.run([str(python), "-c", "import mcrf; print(mcrf.__file__)"], capture_output=True,
                           text=True, cwd=outside, env=CLEAN_ENV, timeout=300)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(env_dir)
    done = subprocess.run([str(env_dir / "bin" / "mcrf"), "inspect", "sample", "--json"], capture_output=True,
                          text=True, cwd=outside, env=CLEAN_ENV, timeout=300)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert {k: (v["sentences"], v["tokens"]) for k, v in info["splits"].items()} == SAMPLE_COUNTS


def test_every_lower_bound_is_the_release_ci_min_deps_installs():
    """A bound in setup.cfg is only true if the suite ran there: .ci/min-deps installs each one exactly."""
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    declared = [line.strip() for line in setup["options"]["install_requires"].splitlines() if line.strip()]
    declared += [line.strip() for line in setup["options.extras_require"]["test"].splitlines() if line.strip()]
    pins = dict(line.split("==") for line in (ROOT / ".ci" / "min-deps.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    for requirement in declared:
        name, bound = requirement.split(">=")
        assert name in pins, f"{name} is declared in setup.cfg but not installed by .ci/min-deps"
        assert _release(pins[name]) == _release(bound), f"setup.cfg: {requirement}, .ci/min-deps: {name}=={pins[name]}"


def _release(version: str) -> tuple:
    """``"4.0"`` -> ``(4, 0, 0)``: a bound and the release it names compare equal."""
    parts = [int(part) for part in version.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))
