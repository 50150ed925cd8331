#!/usr/bin/env bash
# The model benchmarks of the README (issue 3), one after another; results land in bench/results/.
# Usage: bash bench/run_models.sh ../shared/datasets
set -euo pipefail
D=${1:?path to the shared datasets folder}
cd "$(dirname "$0")"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
PY=../.venv/bin/python
$PY latency.py --n 300
$PY accuracy.py --task sentiment --train $D/zh-reviews-sentiment/train.tsv --test $D/zh-reviews-sentiment/test.tsv --limit 5000
$PY accuracy.py --task sentiment --train $D/en-product-reviews-sentiment/train.tsv --test $D/en-product-reviews-sentiment/test.tsv
$PY accuracy.py --task faq --shots 5 --train $D/en-intents-clinc150/train.tsv --test $D/en-intents-clinc150/test.tsv
$PY accuracy.py --task faq --train $D/zh-intents-phonebot/train.tsv --test $D/zh-intents-phonebot/test.tsv
$PY train_speed.py --datasets $D
