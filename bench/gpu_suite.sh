#!/usr/bin/env bash
# GRPO vs PCM on one GPU: actor-update time, activation bytes and peak GPU memory at three policy
# sizes, and the step-time split of a few real training steps. Everything in one short run, so
# it fits a borrowed machine's time; the README's "Measured on a GPU" table comes from it.
#
#   bash bench/gpu_suite.sh [OUT_DIR [--set KEY=VALUE ...]]   # default bench/out/gpu; needs CUDA
#
# Any --set after OUT_DIR goes to every run, e.g. --set grpo.micro_batch_chunks=memory for the
# training runs (update_cost.py times both pass modes itself).
# Works from a source checkout without installing the project (python -m pcm_engine.cli).
set -uo pipefail
out=${1:-bench/out/gpu}
shift || true
extra=("$@")
runs=${TMPDIR:-/tmp}/gpu_suite  # the training runs' folders (checkpoints are large): not in OUT_DIR
mkdir -p "$out" "$runs"
export PYTHONUNBUFFERED=1 PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"

python3 - <<'EOF' | tee "$out/gpu.txt"
import torch, transformers
print(f"{torch.cuda.get_device_name()} | torch {torch.__version__} | transformers {transformers.__version__}")
EOF

# policy sizes (the tiny default is the CPU preset's): ~80 M and ~390 M parameters, bf16
base=(--set policy.hidden_size=768 --set policy.num_layers=12 --set policy.num_heads=12
      --set policy.vision_hidden_size=384 --set policy.vision_layers=6 --set policy.vision_heads=6
      --set policy.dtype=bfloat16)
large=(--set policy.hidden_size=1280 --set policy.num_layers=20 --set policy.num_heads=20
       --set policy.vision_hidden_size=768 --set policy.vision_layers=12 --set policy.vision_heads=12
       --set policy.dtype=bfloat16)
cuda=(--set train.device=cuda "${extra[@]}")
rounds="--min-rounds 3 --max-seconds 60"  # per policy size: fits a borrowed machine

python3 bench/update_cost.py $rounds "${cuda[@]}" 2>&1 | tee "$out/update_tiny_fp32.txt"
python3 bench/update_cost.py $rounds "${cuda[@]}" "${base[@]}" 2>&1 | tee "$out/update_base_bf16.txt"
python3 bench/update_cost.py $rounds "${cuda[@]}" "${base[@]}" --set policy.gradient_checkpointing=true \
    2>&1 | tee "$out/update_base_bf16_ckpt.txt"
python3 bench/update_cost.py $rounds "${cuda[@]}" "${large[@]}" 2>&1 | tee "$out/update_large_bf16.txt"

# the step split of the tabletop preset (64 rollouts a step) with the ~80 M policy, from random
# weights (dynamic sampling off, so every step updates although nothing succeeds yet): 10 steps
# of each selector, one after the other
for selector in full pcm; do
    python3 -m pcm_engine.cli train --config tabletop_pcm --run-dir "$runs/train_$selector" --fresh \
        --set pcm.selector=$selector --set policy.init=random --set train.steps=10 --set eval.every=0 \
        --set grpo.dynamic_sampling=false --set train.checkpoint_every=0 "${cuda[@]}" "${base[@]}" \
        2>/dev/null | tail -1
done
python3 - "$runs" <<'EOF' | tee "$out/train_split.txt"
import sys
from pathlib import Path
from pcm_engine import metrics as M

runs = Path(sys.argv[1])
parts = [M.TIME_ROLLOUT, M.TIME_SELECT, M.TIME_UPDATE, M.TIME_OTHER]
print("selector  step s  rollout  select  update   other  activation MB  peak GPU MB  (steps 2-9)")
for selector in ("full", "pcm"):
    rows = [r for r in M.read_metrics(runs / f"train_{selector}") if M.TIME_STEP in r]
    rows = [r for r in rows if 1 < r["step"] < len(rows)]  # no warm-up, no final checkpoint
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in [*parts, M.TIME_STEP]}
    share = "  ".join(f"{mean[k] / mean[M.TIME_STEP]:6.1%}" for k in parts)
    act = max(r[M.MEM_ACTIVATION] for r in rows) / 2**20
    gpu = max(r.get(M.MEM_PEAK_GPU, 0.0) for r in rows) / 2**20
    print(f"{selector:8s} {mean[M.TIME_STEP]:7.2f}  {share}  {act:13.0f}  {gpu:11.0f}")
EOF
