#!/usr/bin/env bash
# GPU throughput rows for benchmarks/RESULTS.md in one command (< 8 minutes on an H100):
#   bash benchmarks/gpu.sh             # SimCLR ResNet-50, MAE ViT-B/16 (ours vs MONAI) + MFU, batched views/s
#   bash benchmarks/gpu.sh --dry-run   # every path, tiny, on the CPU; writes only to a temporary file
# Extra arguments go to benchmarks/bench_throughput.py (e.g. --no-compile).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # this checkout's monai_ssl
if [[ " $* " == *" --dry-run "* ]]; then
    exec "$PYTHON" benchmarks/bench_throughput.py "$@"
fi
"$PYTHON" benchmarks/bench_throughput.py "$@"
"$PYTHON" benchmarks/collect_results.py > /dev/null
echo "benchmarks/RESULTS.md updated"
