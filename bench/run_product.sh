#!/usr/bin/env bash
# The product benchmarks (issues 4-5): latency, load, swap, learning curves; results in bench/results/.
# Usage: bash bench/run_product.sh ../shared/datasets
set -euo pipefail
D=${1:?path to the shared datasets folder}
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
PY=.venv/bin/python
$PY bench/latency.py --n 300
$PY bench/load.py --seconds 60 --customers 32
$PY bench/swap.py
# Staff who only correct mistakes (confirm rate 0), and staff who also press ✅ on every right decision (1.0).
for rate in 0 1; do
    $PY bench/learning_curve.py --data $D/zh-reviews-sentiment --task sentiment --threads 1 --threshold 0 --per-week 200 --test-limit 300 --confirm-rate $rate
    $PY bench/learning_curve.py --data $D/en-intents-clinc150 --task faq --threads 1 --threshold 0 --per-week 300 --test-limit 300 --confirm-rate $rate
done
