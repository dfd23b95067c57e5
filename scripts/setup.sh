#!/usr/bin/env bash
# One-step set-up of napari-brats-seg on a fresh Debian machine (Python >= 3.11, no GPU needed).
# Idempotent: re-running it only installs what is missing.
#   - Debian packages: Xvfb and Mesa GL (napari needs an X display and OpenGL; tests run under Xvfb),
#     poppler-utils (the report tests render PDF pages with pdftoppm)
#   - a virtual environment in .venv with the pinned CPU build of PyTorch installed first
#     (an unpinned torch would pull a multi-GB CUDA build), then the package with its test, clinical (DICOM) and fast (ONNX Runtime, OpenVINO) extras.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
DEBS="xvfb xauth libgl1 libegl1 libglx-mesa0 libgl1-mesa-dri libxkbcommon-x11-0 libxcb-icccm4 \
libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xinput0 \
libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libdbus-1-3 libfontconfig1 poppler-utils"
missing=""
for d in $DEBS; do dpkg -s "$d" >/dev/null 2>&1 || missing="$missing $d"; done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
if ! $VPY -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  echo "setup: installing torch==2.13.0 (CPU build)"
  $VPY -m pip install -q torch==2.13.0
fi
echo "setup: installing napari-brats-seg with its test dependencies"
$VPY -m pip install -q -e ".[testing,clinical,fast]"
echo "setup: done (.venv/bin/brats-seg, .venv/bin/python -m pytest)"
