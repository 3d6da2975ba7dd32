#!/usr/bin/env bash
# On the GPU machine, from the repository root (the working tree plus device_kit/ made by
# scripts/device_kit.sh): install the kit's wheels without network into a private folder and
# run the device check, results in OUT (default: $OUT/device_check, else device_check_out).
#
#   scripts/device_run.sh [OUT] [extra device_check.py options, e.g. --budget 400]
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=${NVP_KIT:-device_kit}
OUT_DIR=${1:-${OUT:+$OUT/device_check}}
OUT_DIR=${OUT_DIR:-device_check_out}
shift || true
SITE=$(mktemp -d)/site
python3 -m pip install -q --no-index --no-deps --target "$SITE" "$KIT"/wheels/*.whl
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 benchmarks/device_check.py --device cuda --data "$KIT/data" --out "$OUT_DIR" "$@"
