#!/usr/bin/env bash
# Every GPU measurement the project still needs, in one command for a lent GPU (550 s at the most: each part
# runs under its own time limit, 520 s in all, plus 10 s each to stop, so a slow part cannot eat the others'
# time). Exits 1 if any part failed.
#
#   bash tools/gpu_session.sh            # on the GPU machine, from the repository root
#   bash tools/gpu_session.sh --smoke    # the same three parts on the CPU with tiny models (a minute; the
#                                        # graph sampler stands in for the compiled one, which compiles for minutes)
#
# Writes to $OUT (or ./gpu_session): gpu.txt (the card), and per part its output (NAME.txt) and numbers
# (NAME.json; bench's profile in bench_profile.txt):
#   bench           decode tokens/s against transformers at batch 1 and 64, graph and compiled samplers,
#                   and where a batch-1 token's time goes (the profile);
#   ppo_step        one PPO step of the paper preset at 512 new tokens, stage by stage, peak memory
#                   against memory.py's estimate;
#   bench_autotune  the compiled sampler again with TORCHINDUCTOR_MAX_AUTOTUNE=1 (batch 1: matrix-vector
#                   kernels are where the remaining time is).
# Then, if the lent machine has time left (it goes back 30 s after a command ends), decoding on a long cache,
# as the last and longest responses of a paper-scale PPO step decode (the graph sampler, nothing to compile):
#   python3 tools/bench.py --device cuda --engines graph --batches 1,8 --prompt-len 7936 --no-baseline \
#       --no-greedy-check --profile graph --out "${OUT:-gpu_session}/bench_long.json"
set -u
case "${1:-}" in
    ""|--smoke) [ $# -le 1 ] || { echo "error: one flag at most (--smoke); see --help" >&2; exit 2; } ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown flag $1: the only flag is --smoke (the CPU rehearsal); see --help" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
py=$(command -v python3 || command -v python)  # the GPU machine's torch is its python3's; some have no `python`
out=${OUT:-gpu_session}
mkdir -p "$out"
if [ "${1:-}" = "--smoke" ]; then
    bench=(--device cpu --gpu-path --tiny --engines graph --batches 1,4 --profile graph)
    check=(--device cpu --tiny --lengths 16 --sampler graph)
    autotune=(--device cpu --gpu-path --tiny --engines graph --batches 1 --no-baseline)
else
    bench=(--device cuda --engines graph,compiled --batches 1,64 --profile compiled)
    check=(--lengths 512 --sampler compiled)
    autotune=(--device cuda --engines compiled --batches 1,64 --no-baseline)
fi

failed=0
part() {  # part NAME SECONDS COMMAND...: run it under a time limit, its output to the screen and NAME.txt
    local name=$1 limit=$2
    shift 2
    echo "== $name (at most ${limit} s): $*"
    # -k: train_rl (under gpu_check) answers SIGTERM by finishing its step; SIGKILL 10 s later ends it anyway
    timeout -k 10 "$limit" "$@" 2>&1 | tee "$out/$name.txt"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc after $SECONDS s in all"
    [ "$rc" -eq 0 ] || failed=1
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  "$py" -c "import torch; print('torch', torch.__version__)"; } | tee "$out/gpu.txt"
part bench 220 "$py" tools/bench.py "${bench[@]}" --out "$out/bench.json"
part ppo_step 160 "$py" tools/gpu_check.py "${check[@]}" --out "$out/ppo_step.json"
part bench_autotune 140 env TORCHINDUCTOR_MAX_AUTOTUNE=1 "$py" tools/bench.py "${autotune[@]}" \
    --out "$out/bench_autotune.json"
exit "$failed"
