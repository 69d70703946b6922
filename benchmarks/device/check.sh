#!/usr/bin/env bash
# The GPU checks in one command on a CUDA machine that cannot reach a package index; logs under $OUT:
#   benchmarks/device/fetch_wheels.sh        # first, where PyPI is reachable: the wheels that machine lacks
#   bash benchmarks/device/check.sh          # there, with .device-wheels/ in the checkout's root
# Installs the project from those wheels, runs the CUDA tests, then our loop vs. a plain one
# (throughput, peak GPU memory) and the overhead of one default-sweep trial on CUDA. Each step has
# its own time limit and a failing step does not stop the next. SWEEP_CHECK_DEVICE=cpu runs the same
# steps small on a CPU (a dry run of the script).
set -uo pipefail
cd "$(dirname "$0")/../.."

out=${OUT:-/tmp/device-check}
mkdir -p "$out"
python=${PYTHON:-python3}
device=${SWEEP_CHECK_DEVICE:-cuda}
export PYTHONUNBUFFERED=1
status=0

step() {  # step NAME SECONDS COMMAND...: run it with a limit, log to $out/NAME.log, remember a failure
  local name=$1 limit=$2
  shift 2
  echo "== $name ($(date +%T), limit ${limit}s): $*"
  timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc"
  [ "$rc" = 0 ] || status=1
}

{
  nvidia-smi 2>&1 || echo "no nvidia-smi"
  "$python" -c 'import sys, torch, timm; print(sys.version); print("torch", torch.__version__, "cuda", torch.version.cuda,
"available", torch.cuda.is_available()); print("timm", timm.__version__);
print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")'
  nproc
} > "$out/machine.txt" 2>&1
cat "$out/machine.txt"

# As the README installs it (pip install -e .), from the carried wheels; if the image's own packages
# do not satisfy a requirement, say which and install without the check so the GPU steps still run.
# The project's license field needs setuptools 77 or newer; an image may hold an older one.
"$python" -m pip install --no-index --find-links .device-wheels "setuptools>=77" > "$out/install.log" 2>&1
if ! "$python" -m pip install --no-index --find-links .device-wheels --no-build-isolation -e . >> "$out/install.log" 2>&1; then
  echo "install with dependency checks failed (see install.log); retrying with --no-deps"
  "$python" -m pip install --no-index --find-links .device-wheels --no-build-isolation --no-deps -e . >> "$out/install.log" 2>&1
  "$python" -m pip install --no-index --find-links .device-wheels .device-wheels/*.whl >> "$out/install.log" 2>&1 || status=1
fi
tail -n 3 "$out/install.log"

if [ "$device" = cuda ]; then
  size=(--device cuda --image-size 224 --max-train 2048)
  overhead=(--device cuda --model resnet50 --epochs 8 --max-train 512 --max-val 256 --frozen-stages 4 --pairs 5)
  pairs=3
else
  size=(--device cpu)
  overhead=(--device cpu --pairs 1)
  pairs=1
fi
# The CUDA paths: bf16/fp16 autocast, GradScaler, channels_last, compile, data kept on the GPU.
step tests 240 "$python" -m pytest -q -rs -p no:cacheprovider tests/test_acceleration.py tests/test_precompute.py
step throughput 180 "$python" benchmarks/throughput_memory.py "${size[@]}" --pairs "$pairs"
step overhead 120 "$python" benchmarks/overhead.py "${overhead[@]}"
echo "device check done, exit $status; logs in $out"
exit "$status"
