#!/usr/bin/env bash
# Set up ./.venv with everything the monitor needs, from scratch.
#   ./setup.sh            run-time packages
#   ./setup.sh --test     plus the test tools
#   ./setup.sh --train    plus the training extras (onnxruntime)
#   ./setup.sh --mesh     also ./.venv-mesh: MediaPipe's face mesh for `train profile`, kept apart because
#                         mediapipe 0.10.21 needs numpy<2 and protobuf<5 and brings its own OpenCV and jax
# System packages (Debian/Ubuntu): a C compiler and the ALSA headers (simpleaudio builds from source)
# and the libraries Qt needs. They are installed when this runs as root or with password-less sudo;
# otherwise the script stops and prints the exact command to run.
set -euo pipefail
cd "$(dirname "$0")"

EXTRAS=()
MESH=0
for arg in "$@"; do
  case "$arg" in
    --test) EXTRAS+=(test) ;;
    --train) EXTRAS+=(train) ;;
    --mesh) MESH=1 ;;
    *) echo "setup.sh: unknown option $arg (allowed: --test --train --mesh)" >&2; exit 2 ;;
  esac
done

APT_PACKAGES=(gcc libasound2-dev libegl1 libgl1 libglib2.0-0 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1
              libdbus-1-3 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-randr0
              libxcb-render-util0 libxcb-image0 libxcb-xinerama0 alsa-utils)
if command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo"
    else
      echo "setup.sh: these system packages are missing: ${missing[*]}" >&2
      echo "Run this, then run setup.sh again:" >&2
      echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
      exit 1
    fi
    echo "setup.sh: installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
else
  echo "setup.sh: not a Debian-like system; make sure a C compiler and the ALSA headers are installed" >&2
fi

PYTHON="${PYTHON:-python3}"
# torch 2.14.1 + torchvision 0.29.1 are a pair that import together (facenet-pytorch needs torchvision).
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"
"$PYTHON" -m venv .venv
# shellcheck disable=SC2086
.venv/bin/python -m pip install -q $TORCH_SPEC
spec="."
if [ ${#EXTRAS[@]} -gt 0 ]; then spec=".[$(IFS=,; echo "${EXTRAS[*]}")]"; fi
.venv/bin/python -m pip install -q -e "$spec"
.venv/bin/python -c "import torch, cv2, facenet_pytorch, PyQt6.QtWidgets, simpleaudio; print('setup.sh: ready (.venv)')"
if [ "$MESH" -eq 1 ]; then
  # Only what monitor/training/facemesh.py imports: mediapipe (which brings numpy<2 and opencv-contrib-python).
  "$PYTHON" -m venv .venv-mesh
  .venv-mesh/bin/python -m pip install -q "mediapipe==0.10.21"
  .venv-mesh/bin/python -c "import mediapipe; mediapipe.solutions.face_mesh.FaceMesh; print('setup.sh: ready (.venv-mesh)')"
fi
