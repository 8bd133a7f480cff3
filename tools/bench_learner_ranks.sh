#!/usr/bin/env bash
# Learner step time on the ~20M-parameter benchmark model for E = 1 and 5
# members and 1 and 2 data-parallel ranks, through `bpo learner` on real
# TL;DR pairs (prompt = query, chosen = human reference, rejected = the
# 1.3B PPO policy's summary; 64-token prompts, 128-token responses), B = 8.
# Prints the median step seconds of steps 2..4 of each configuration.
#   tools/bench_learner_ranks.sh            (after building build/bin/*)
set -euo pipefail
cd "$(dirname "$0")/.."
bench_dir=${BPO_BENCH_DIR:-/tmp/bpo-bench-llama20m}
work=$(mktemp -d)
# Writes the model (and its tokenizer) once.
build/bin/trainer_benchmark --benchmark_filter=LearnerStep/1 --benchmark_min_time=0 >/dev/null 2>&1 || true
python3 - "$work/pairs.jsonl" <<'PY'
import csv, json, sys
rows = list(csv.DictReader(open("../shared/data/tldr/oai1b.csv")))[:64]
with open(sys.argv[1], "w") as f:
    for r in rows:
        f.write(json.dumps({"prompt": r["query"], "chosen": r["reference_responses"],
                            "rejected": r["postprocessed_response"]}) + "\n")
PY
median() { python3 -c "import json,statistics,sys; s=[json.loads(l)['seconds'] for l in open(sys.argv[1])][1:]; print(f'{statistics.median(s):.2f}')" "$1"; }
for members in 1 5; do
  for ranks in 1 2; do
    cat > "$work/e$members-r$ranks.yaml" <<YAML
run_id: e$members-r$ranks
schedule: {total_steps: 4, phases: 1, batch_size: 8}
lora: {members: $members, rank: 8, alpha: 16, dropout: 0.1}
sampling: {max_new_tokens: 128}
model: {policy: $bench_dir}
learner: {world_size: $ranks, checkpoint_every: 0}
endpoints: {metrics: "127.0.0.1:0", snapshots: "127.0.0.1:0"}
YAML
    args=(learner --config "$work/e$members-r$ranks.yaml" --pairs "$work/pairs.jsonl"
          --output "$work/out" --max_prompt_tokens 64 --log_level=warning)
    if [[ $ranks == 1 ]]; then
      build/bin/bpo "${args[@]}" >/dev/null
    else
      OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 build/bin/bpo "${args[@]}" --rank 1 >/dev/null &
      OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 build/bin/bpo "${args[@]}" --rank 0 >/dev/null
      wait
    fi
    echo "E=$members ranks=$ranks: median step $(median "$work/out/e$members-r$ranks/steps.jsonl") s for 8 pairs"
  done
done
rm -rf "$work"
