#!/usr/bin/env bash
# Installs everything the project and its tests need on a fresh Debian machine with Python >= 3.10:
# system libraries for OpenCV, Qt and OpenGL under Xvfb (when apt-get is available and we are root),
# the CPU build of torch, the project with its extras, and the BlazePose models converted to ONNX.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    xvfb xauth libgl1 libgl1-mesa-dri libegl1 libglib2.0-0 libxkbcommon-x11-0 libxcb-cursor0 \
    libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 \
    libxcb-image0 libdbus-1-3 libfontconfig1 ffmpeg >/dev/null
fi
python3 -m pip install -q --upgrade pip
# torch first: this exact version is a CPU build on the project's machines; a bare "torch" would pull CUDA.
python3 -m pip install -q "torch==2.13.0"
python3 -m pip install -q -e ".[dev,train]"
# BlazePose: download the mediapipe wheel from PyPI and convert its two models to ONNX (cached).
crossview models fetch
