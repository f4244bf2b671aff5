"""``mcrf predict`` across processes: a 2-process gloo run (torchrun) must write the very bytes of a 1-process run.

The input (odd-sized, with empty lines and non-ASCII) is cut into blocks of batch_size x
chunk_batches = 4 sentences dealt round-robin to the ranks, so the ranks hold different numbers of
blocks. A run that fails leaves the previous output untouched and no parts behind.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch.distributed

from mcrf.cli.app import main
from mcrf.data import load_corpus

from serving import ENV, ROOT

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with the gloo backend is not available")


def lines():
    sentences = [" ".join(s.tokens) for s in load_corpus("sample").splits["test"][:37]]
    sentences[5] = ""
    sentences[17] = "  São Paulo  hosts   Anna Weber . "
    return sentences + [""]


def torchrun(*argv, cwd):
    env = dict(ENV, TOKENIZERS_PARALLELISM="false")
    env.pop("ACCELERATE_USE_CPU", None)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "mcrf", "predict", *map(str, argv)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("output_format", ["jsonl", "conll"])
def test_two_processes_write_the_bytes_of_one(sample_model, tmp_path, output_format):
    source = tmp_path / "in.txt"
    source.write_text("\n".join(lines()) + "\n", encoding="utf-8")
    flags = ["--model", sample_model, "--format", output_format, "--batch-size", "2", "--chunk-batches", "2",
             "--device", "cpu", "--quiet"]
    single, sharded = tmp_path / f"single.{output_format}", tmp_path / f"sharded.{output_format}"
    assert main(["predict", str(source), "-o", str(single), *map(str, flags)]) == 0
    done = torchrun(source, "-o", sharded, *flags, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sharded.read_bytes() == single.read_bytes()
    assert len(single.read_bytes()) > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.txt", single.name, sharded.name])
    assert oct(sharded.stat().st_mode & 0o777) == oct(single.stat().st_mode & 0o777)


def test_a_failed_run_leaves_the_old_output_and_no_parts(sample_model, tmp_path):
    source = tmp_path / "in.txt"
    source.write_bytes(("\n".join(lines()) + "\n").encode("utf-8") + b"bad \xff byte\n")
    target = tmp_path / "out.jsonl"
    target.write_text("previous\n", encoding="utf-8")
    done = torchrun(source, "--model", sample_model, "--format", "jsonl", "-o", target, "--batch-size", "2",
                    "--chunk-batches", "2", "--device", "cpu", cwd=tmp_path)
    assert done.returncode != 0
    assert "in.txt:39" in done.stderr  # the bad line, named by every rank
    assert target.read_text(encoding="utf-8") == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl"]


def test_several_processes_need_an_output_file(sample_model, tmp_path, monkeypatch, capsys):
    source = tmp_path / "in.txt"
    source.write_text("John Smith\n", encoding="utf-8")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["predict", str(source), "--model", str(sample_model)]) != 0
    assert "pass --output FILE" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "two")
    assert main(["predict", str(source), "--model", str(sample_model)]) != 0
    assert "WORLD_SIZE" in capsys.readouterr().err
