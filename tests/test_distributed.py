"""Two-process CPU data-parallel training (gloo) through Accelerate, launched with torchrun.

Checks that the run completes, that dev evaluation covers the whole dev set exactly once across
the processes (an odd-sized dev set, compared with a single-process evaluation of the saved
model), and that exactly one model (and one set of run files) is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed

from mcrf.crf.spans import get_spans

from test_training import write_toy_corpus

SCRIPT = """
import json, sys
from accelerate import PartialState
from mcrf.training import TrainConfig, train

result = train(TrainConfig.from_dict(json.loads(sys.argv[1])))
state = PartialState()
with open(f"result_{state.process_index}.json", "w") as handle:  # one file per process
    json.dump({"rank": state.process_index, "world": state.num_processes, "backend": str(state.backend),
               "global_step": result.global_step, "dev_f1": result.metrics["dev"]["f1"]}, handle)
"""


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with the gloo backend is not available")
def test_two_process_cpu_training_evaluates_whole_dev_set_and_writes_one_model(tmp_path):
    from mcrf.data import load_corpus
    from mcrf.evaluation import evaluate
    from mcrf.models import Tagger
    from mcrf.training import TrainConfig

    corpus_dir = write_toy_corpus(tmp_path / "corpus", sizes=(40, 17, 11))
    out = tmp_path / "run"
    config = TrainConfig.for_dataset(str(corpus_dir), encoder="bilstm", output_dir=str(out), epochs=2,
                                     batch_size=8, lr=3e-3, head_lr=3e-3, patience=None, seed=3)
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT, encoding="utf-8")
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env.pop("ACCELERATE_USE_CPU", None)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), json.dumps(config.to_dict())],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = [json.loads(path.read_text()) for path in sorted(tmp_path.glob("result_*.json"))]
    assert sorted(r["rank"] for r in results) == [0, 1]
    assert {(r["world"], r["backend"]) for r in results} == {(2, "gloo")}
    # 40 sentences / batch 8 = 5 batches per epoch, dealt to 2 processes = 3 steps per epoch
    assert {r["global_step"] for r in results} == {6}
    assert results[0]["dev_f1"] == results[1]["dev_f1"]

    # exactly one model and one set of run files, no temporary leftovers; one lock (the main process's)
    assert sorted(p.name for p in out.iterdir()) == [
        ".mcrf.lock", "last", "metrics.json", "model", "train_log.jsonl", "training_curves.png"]
    assert [p.relative_to(out) for p in out.rglob("config.json")] == [Path("model/config.json")]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["event"] == "eval"] == [3, 6]  # logged once, by the main process

    # the distributed dev evaluation saw every dev sentence exactly once
    metrics = json.loads((out / "metrics.json").read_text())
    dev = load_corpus(str(corpus_dir)).splits["dev"]
    assert metrics["dev"]["num_sentences"] == len(dev) == 17
    assert metrics["dev"]["num_gold_spans"] == sum(len(get_spans(s.tags, "BIO")) for s in dev)
    single = evaluate(Tagger.from_pretrained(out / "model"), dev, batch_size=4)
    assert metrics["dev"]["f1"] == pytest.approx(single.f1)
    assert metrics["dev"]["per_type"] == single.per_type
    assert metrics["processes"] == 2
