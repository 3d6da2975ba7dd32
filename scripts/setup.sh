#!/usr/bin/env bash
# Idempotent set-up of nvp's environment: a .venv in the project with the measured working set.
#
#  * torch==2.13.0 is pinned through requirements/constraints.txt (an unpinned torch resolves a
#    newer build with gigabytes of CUDA packages).
#  * mediapipe==0.10.21 is the last release whose wheel carries the Face Mesh models. Its
#    metadata pins numpy<2 and protobuf<5, yet its face mesh runs correctly on numpy 2.4 and
#    protobuf 6.33 (protobuf 5.29 and 7.x break it), so it is installed with --no-deps next to
#    its real runtime needs (absl-py, attrs, flatbuffers, sentencepiece, opencv, matplotlib).
#  * opencv comes as the headless build (no libGL needed on servers).
#
# Re-running is cheap: nothing is done when the requirement files are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
VENV=.venv
STAMP="$VENV/.nvp-setup"
want=$(cat requirements/*.txt setup.cfg pyproject.toml scripts/setup.sh | sha256sum | cut -c1-32)

# The default TTS of `nvp say` is the espeak-ng program (Debian package). Installed where this
# script may use apt (root, or password-less sudo); elsewhere `nvp say` explains what to do.
if ! command -v espeak-ng >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" = 0 ] || { sudo -n true 2>/dev/null && SUDO="sudo -n"; } || SUDO="skip"
  if [ "$SUDO" != "skip" ]; then
    echo "nvp setup: installing espeak-ng (text-to-speech for nvp say)" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -q --no-install-recommends espeak-ng >/dev/null 2>&1 \
      || { $SUDO apt-get update -q >/dev/null 2>&1 \
           && $SUDO apt-get install -y -q --no-install-recommends espeak-ng >/dev/null 2>&1; } \
      || echo "nvp setup: could not install espeak-ng; nvp say needs it (or tts.command)" >&2
  else
    echo "nvp setup: espeak-ng is not installed and apt needs root; nvp say needs it" >&2
  fi
fi

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && "$VENV/bin/python" -c "import nvp" 2>/dev/null; then
  exit 0
fi

"$PY" - <<'PYEOF'
import sys
if sys.version_info[:2] != (3, 11):
    sys.exit(f"nvp needs Python 3.11 (mediapipe 0.10.21 and the pinned torch); found {sys.version.split()[0]}")
PYEOF

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
export PIP_NO_WARN_SCRIPT_LOCATION=1

echo "nvp setup: installing the working set into $VENV (first run takes a few minutes)" >&2
# A non-headless opencv from an earlier install would shadow the headless one.
"${PIP[@]}" uninstall -y opencv-contrib-python opencv-python >/dev/null 2>&1 || true
"${PIP[@]}" install -c requirements/constraints.txt \
  -r requirements/base.txt -r requirements/audio.txt -r requirements/metrics.txt \
  -r requirements/dev.txt 2> >(grep -v "^WARNING: Location" >&2)
"${PIP[@]}" install --no-deps -c requirements/constraints.txt mediapipe==0.10.21 2> >(grep -v "^WARNING: Location" >&2)
"${PIP[@]}" install --no-deps --no-build-isolation -e . 2> >(grep -v "^WARNING: Location" >&2)

# Check the resolution that matters: torch pinned, mediapipe's face mesh importable.
"$VENV/bin/python" - <<'PYEOF'
import torch, numpy, google.protobuf
assert torch.__version__.startswith("2.13.0"), f"torch {torch.__version__} installed, 2.13.0 expected"
from mediapipe.python.solutions import face_mesh  # noqa: F401
print(f"nvp setup: torch {torch.__version__}, numpy {numpy.__version__}, "
      f"protobuf {google.protobuf.__version__}, mediapipe face mesh OK")
PYEOF
echo "$want" > "$STAMP"
