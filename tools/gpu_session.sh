#!/usr/bin/env bash
# Every GPU measurement the project still needs, in one command for a lent GPU (about 9 minutes at most:
# each part runs under its own time limit, so a slow part cannot eat the others' time).
#
#   bash tools/gpu_session.sh            # on the GPU machine, from the repository root
#   bash tools/gpu_session.sh --smoke    # the same three parts on the CPU with tiny models (a minute)
#
# Writes to $OUT (or ./gpu_session): gpu.txt (the card), and per part its output (NAME.txt) and numbers
# (NAME.json; bench's profile in bench_profile.txt):
#   bench           decode tokens/s against transformers at batch 1 and 64, graph and compiled samplers,
#                   and where a batch-1 token's time goes (the profile);
#   ppo_step        one PPO step of the paper preset at 512 new tokens, stage by stage, peak memory
#                   against memory.py's estimate;
#   bench_autotune  the compiled sampler again with TORCHINDUCTOR_MAX_AUTOTUNE=1 (batch 1: matrix-vector
#                   kernels are where the remaining time is).
set -u
cd "$(dirname "$0")/.."
out=${OUT:-gpu_session}
mkdir -p "$out"
if [ "${1:-}" = "--smoke" ]; then
    bench=(--device cpu --gpu-path --tiny --engines graph --batches 1,4)
    check=(--device cpu --tiny --lengths 16 --sampler graph)
    autotune=(--device cpu --gpu-path --tiny --engines graph --batches 1 --no-baseline)
else
    bench=(--device cuda --engines graph,compiled --batches 1,64 --profile compiled)
    check=(--lengths 512 --sampler compiled)
    autotune=(--device cuda --engines compiled --batches 1,64 --no-baseline)
fi

part() {  # part NAME SECONDS COMMAND...: run it under a time limit, its output to the screen and NAME.txt
    local name=$1 limit=$2
    shift 2
    echo "== $name (at most ${limit} s): $*"
    timeout "$limit" "$@" > >(tee "$out/$name.txt") 2>&1
    echo "== $name: exit $? after $SECONDS s in all"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  python -c "import torch; print('torch', torch.__version__)"; } | tee "$out/gpu.txt"
part bench 240 python tools/bench.py "${bench[@]}" --out "$out/bench.json"
part ppo_step 180 python tools/gpu_check.py "${check[@]}" --out "$out/ppo_step.json"
part bench_autotune 150 env TORCHINDUCTOR_MAX_AUTOTUNE=1 python tools/bench.py "${autotune[@]}" \
    --out "$out/bench_autotune.json"
