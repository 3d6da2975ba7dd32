#!/usr/bin/env bash
# Prepare, on this machine, what a GPU machine without network needs to run
# benchmarks/device_check.py (see README, "Running on a GPU"):
#
#   scripts/device_kit.sh [KIT_DIR]          (default device_kit/, git-ignored)
#
#  * KIT_DIR/wheels: exactly the wheels nvp's training, rendering and reenactment need that the
#    GPU image (Python 3.12, torch + CUDA, pytorch-lightning, torchmetrics, numpy, scipy,
#    opencv, matplotlib, pandas, pytest) lacks, for CPython 3.12 on manylinux x86-64, at the
#    versions of requirements/constraints.txt. Not in the kit on purpose: MediaPipe (stores are
#    prepared here), librosa (needs numba + llvmlite, 64 MB; the check feeds stored feature
#    windows), Whisper, W&B.
#  * KIT_DIR/data: the tiny corpus the check trains on (preprocessed here with MediaPipe).
#
# Prints the kit's size; it must stay well under the 64 MiB that travel with the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=${1:-device_kit}
PY=.venv/bin/python
[ -x "$PY" ] || scripts/setup.sh
mkdir -p "$KIT/wheels"

pin() {  # the version constraints.txt pins, else the installed one
  local v
  v=$(grep -i "^$1==" requirements/constraints.txt | head -1 | cut -d= -f3 || true)
  [ -n "$v" ] || v=$("$PY" -c "import importlib.metadata as m; print(m.version('$1'))")
  echo "$1==$v"
}

PKGS=(av omegaconf zarr donfig google-crc32c kornia kornia-rs)
SPECS=()
for p in "${PKGS[@]}"; do SPECS+=("$(pin "$p")"); done
# numcodecs 0.17 ships a 1.4 MB wheel for CPython 3.12 where 0.16 ships 9.3 MB; zarr 3.1
# takes either, and the stores' Blosc/zstd chunks read the same.
SPECS+=("numcodecs==0.17.1")
echo "device kit: ${SPECS[*]}"
"$PY" -m pip --disable-pip-version-check download -q --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any \
  -d "$KIT/wheels" "${SPECS[@]}" 2> >(grep -v "^WARNING: Location" >&2)

if [ ! -f "$KIT/data/corpus/face_model.npz" ]; then
  "$PY" benchmarks/device_check.py --prepare "$KIT/data"
fi

wheels=$(du -cb "$KIT"/wheels/*.whl | tail -1 | cut -f1)
data=$(du -sb "$KIT/data" | cut -f1)
tree=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
total=$((wheels + data + tree))
mib() { awk "BEGIN { printf \"%.1f MiB\", $1 / 1048576 }"; }
echo "device kit: $(ls "$KIT"/wheels/*.whl | wc -l) wheels $(mib "$wheels"), data $(mib "$data"); with the working tree $(mib "$tree"): $(mib "$total") of 64 MiB"
if [ "$total" -gt $((56 * 1048576)) ]; then
  echo "device kit: over 56 MiB, too close to the 64 MiB limit" >&2
  exit 1
fi
