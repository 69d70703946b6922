#!/usr/bin/env bash
# Run where PyPI is reachable, before benchmarks/device/check.sh on a GPU machine that cannot reach it:
# downloads into .device-wheels/ the wheels of the project's dependencies that a CUDA image with torch,
# timm, numpy, scipy, scikit-learn, rich, click and pytest lacks (Optuna and its storage stack).
# Copy the folder into the checkout's root there. DEVICE_PYTHON_VERSION picks the wheels' Python (default 3.12).
set -euo pipefail
cd "$(dirname "$0")/../.."

python_version=${DEVICE_PYTHON_VERSION:-3.12}
dest=.device-wheels
# The versions this project is tested with here; --no-deps because everything else is in the image.
packages=(
  optuna==5.0.0 alembic==1.20.1 SQLAlchemy==2.1.9 Mako==1.4.3 colorlog==6.12.0
  psycopg==3.3.9 psycopg-binary==3.3.9 plotly==7.1.0 optuna-dashboard==0.21.0 bottle==0.13.4 tomli_w==1.2.0
)
rm -rf "$dest"
mkdir -p "$dest"
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$dest" \
  --python-version "$python_version" --implementation cp --platform manylinux_2_28_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any "${packages[@]}"
# setuptools builds the editable install there without an index.
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$dest" "setuptools>=77" wheel
du -sh "$dest"
ls "$dest"
