#!/usr/bin/env bash
# The GPU check, about 5 minutes on one CUDA GPU (nothing here has been run on a GPU yet):
#   1. installs the `gpu` extra of pyproject.toml (bitsandbytes) into the venv, keeping the torch already there;
#   2. runs the cuda-marked tests (tests/test_cuda.py: GPU training/serving, the NF4 trunk, adapters reloaded on the CPU);
#   3. the 5,000-example weekly retrain of bench/train_speed.py with model.device = "cuda" (cold, then warm),
#      then the same with model.load_in_4bit = true if bitsandbytes works and time is left.
# Timings are printed; results in bench/results/train_speed-cuda.json and train_speed-cuda-4bit.json.
# Usage: bash bench/gpu_check.sh ../shared/datasets      (PY=/path/to/python to use another interpreter;
#        PIP_FIND_LINKS=folder-of-wheels where the machine is offline)
set -uo pipefail
D=${1:?path to the shared datasets folder}
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
PY=${PY:-.venv/bin/python}
BUDGET=${BUDGET:-300}  # seconds for the whole check
status=0
rm -f bench/results/train_speed-cuda.json bench/results/train_speed-cuda-4bit.json  # never report an older run

$PY -c "import torch; print(f'torch {torch.__version__} (CUDA build {torch.version.cuda}), cuda available: {torch.cuda.is_available()}')"
if ! $PY -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu_check: CUDA is not available to this torch: install a CUDA build of torch 2.13.0 into the venv" \
         "(the Makefile installs the CPU wheel), then run this again" >&2
    exit 2
fi
$PY -c "import torch; print('GPU:', torch.cuda.get_device_name())"

extra=$($PY -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['gpu']))")
$PY -m pip install -q $extra || echo "gpu_check: could not install $extra: the 4-bit checks are skipped" >&2
if $PY -c "import bitsandbytes" 2>/dev/null; then four_bit=1; else four_bit=0; fi

echo "== cuda-marked tests"
timeout 150 $PY -m pytest -q -rs -m cuda tests/test_cuda.py || status=1

echo "== 5,000-example retrain, model.device = cuda"
timeout $((BUDGET - SECONDS > 30 ? BUDGET - SECONDS : 30)) $PY bench/train_speed.py --datasets "$D" --device cuda || status=1
if [ "$four_bit" = 1 ] && [ $((BUDGET - SECONDS)) -gt 90 ]; then
    echo "== the same with model.load_in_4bit = true"
    timeout $((BUDGET - SECONDS)) $PY bench/train_speed.py --datasets "$D" --device cuda --load-in-4bit || status=1
else
    echo "== 4-bit retrain skipped (bitsandbytes importable: $four_bit, seconds left: $((BUDGET - SECONDS)))"
fi

$PY - <<'EOF'
import json
from pathlib import Path

for name in ("train_speed-cuda", "train_speed-cuda-4bit"):
    path = Path("bench/results") / f"{name}.json"
    if not path.exists():
        print(f"{name}: no result")
        continue
    result = json.loads(path.read_text())
    print(f"{name} ({result['gpu']}, torch {result['torch']}, {result['examples']} examples, "
          f"peak GPU {result['peak_gpu_mb']} MB):")
    for run in result["runs"]:
        tasks = ", ".join(f"{t} {v['train_seconds']} s (accuracy {v['accuracy']})" for t, v in run["tasks"].items())
        print(f"  {run['cache']}: {run['seconds']} s, {run['status']}; {tasks}")
EOF
echo "gpu_check: $( [ $status = 0 ] && echo passed || echo FAILED ) in ${SECONDS} s"
exit $status
