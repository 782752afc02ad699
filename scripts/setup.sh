#!/usr/bin/env bash
# Idempotent set-up: installs the CPU build of torch first (so that nothing pulls a CUDA build),
# then this package with the exact tested versions from constraints.txt.
# Installs into the active Python environment (use a virtual environment if you prefer).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
"$PY" -m pip install --quiet "torch==2.13.0"   # a no-op when it is installed; on this platform: the local CPU build
"$PY" -m pip install --quiet -c constraints.txt -e ".[test]"
# the MONAI Label server environment (.venv-monailabel; README "Serve an encoder from MONAI Label")
PYTHON="$PY" bash scripts/setup_monailabel.sh
"$PY" -c "import torch, monai, medssl_monai; print(f'medssl_monai {medssl_monai.__version__} | torch {torch.__version__} | monai {monai.__version__}')"
