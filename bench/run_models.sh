#!/usr/bin/env bash
# The model benchmarks behind the README's numbers table, each with the product's configuration
# (config.toml, TrainArgs()); results land in bench/results/ and the table is printed at the end.
# Usage: bash bench/run_models.sh ../shared/datasets            (about 40 minutes on 2 cores)
#        ABLATION=1 bash bench/run_models.sh ../shared/datasets (+ the recipe ablation, about 2 hours)
set -euo pipefail
D=${1:?path to the shared datasets folder}
cd "$(dirname "$0")"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
PY=../.venv/bin/python
$PY latency.py --n 300 --datasets $D
$PY demo_first_train.py
$PY accuracy.py --task sentiment --train $D/zh-reviews-sentiment/train.tsv --test $D/zh-reviews-sentiment/test.tsv --limit 3000 --test-limit 1500
$PY accuracy.py --task sentiment --train $D/en-product-reviews-sentiment/train.tsv --test $D/en-product-reviews-sentiment/test.tsv
$PY accuracy.py --task faq --shots 5 --train $D/en-intents-clinc150/train.tsv --test $D/en-intents-clinc150/test.tsv
$PY accuracy.py --task faq --train $D/zh-intents-phonebot/train.tsv --test $D/zh-intents-phonebot/test.tsv
$PY routing.py
$PY train_speed.py --datasets $D
if [ "${ABLATION:-0}" = 1 ]; then
    $PY ablation.py --train $D/zh-reviews-sentiment/train.tsv --test $D/zh-reviews-sentiment/test.tsv --limit 3000 --test-limit 1500
    $PY ablation.py --train $D/en-product-reviews-sentiment/train.tsv --test $D/en-product-reviews-sentiment/test.tsv
    $PY ablation.py --train $D/en-product-reviews-sentiment/train.tsv --test $D/en-product-reviews-sentiment/test.tsv --rows ceiling --ensemble ""
fi
$PY numbers_table.py
