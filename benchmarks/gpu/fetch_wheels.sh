#!/usr/bin/env bash
# Prepares the Python packages benchmarks/gpu/run_on_gpu.sh needs on a GPU machine that has CUDA
# torch, transformers, accelerate and safetensors but no PyPI: every pin of
# benchmarks/gpu/wheels.txt, downloaded as wheels for CPython 3.12 on x86-64 Linux (without their
# dependencies: wheels.txt names each one such a machine lacks), installed into a folder as pip
# would install them there, and packed into one archive small enough to travel with the working
# tree (the service models of botocore other than S3 and STS are left out: nothing here calls AWS).
# Run it where PyPI is reachable, in the repository root:
#
#   benchmarks/gpu/fetch_wheels.sh                         # -> .whl/site.tar.gz (about 45 MiB; git ignores .whl/)
#   WHEEL_PYTHON=3.11 benchmarks/gpu/fetch_wheels.sh       # for a GPU machine with another Python
#
# On the GPU machine run_on_gpu.sh unpacks it into /tmp/zimage-site and puts that on PYTHONPATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="${WHEEL_DIR:-$ROOT/.whl}"
PY="${WHEEL_PYTHON:-3.12}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
platforms=()
for n in 17 24 27 28 31 34 35; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
platforms+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform linux_x86_64 --platform any)
target=(--only-binary=:all: --python-version "$PY" --implementation cp "${platforms[@]}")
pins="$(mktemp)"
site="$(mktemp -d)"
trap 'rm -rf "$pins" "$site"' EXIT
grep -v '^\s*#' "$ROOT/benchmarks/gpu/wheels.txt" | grep -v '^\s*$' > "$pins"
mkdir -p "$DEST/wheels"
"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps "${target[@]}" -d "$DEST/wheels" -r "$pins"
"$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps --no-compile --no-index --find-links "$DEST/wheels" \
  "${target[@]}" --target "$site" -r "$pins"
for service in "$site"/botocore/data/*/; do
  case "$(basename "$service")" in s3|sts) ;; *) rm -rf "$service" ;; esac
done
find "$site" -name __pycache__ -prune -exec rm -rf {} +
tar -czf "$DEST/site.tar.gz" -C "$site" .
echo "$(wc -l < "$pins") packages for CPython $PY -> $DEST/site.tar.gz ($(du -h "$DEST/site.tar.gz" | cut -f1))"
