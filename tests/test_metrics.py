"""Local evaluate metric modules and the evaluation reports built on them."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import evaluate
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.evaluation import (
    Confusion,
    Mistake,
    classification_report,
    misclassified,
    most_confused,
    retrieval_report,
)
from training.metrics import METRIC_NAMES, load_metric, metric_path

REPO = Path(__file__).resolve().parents[1]

labels = st.sampled_from(["positive", "neutral", "negative"])
pairs = st.lists(st.tuples(labels, labels), min_size=1, max_size=30)


def test_every_metric_is_a_local_evaluate_metric() -> None:
    for name in METRIC_NAMES:
        assert (metric_path(name) / f"{name}.py").is_file()
        module = load_metric(name)
        assert isinstance(module, evaluate.Metric)
        assert load_metric(name) is module  # cached per process


def test_unknown_metric_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        metric_path("bleu")


def test_metrics_load_offline_from_a_cold_cache(tmp_path: Path) -> None:
    script = (
        "import json, time\n"
        "start = time.perf_counter(); import evaluate; imported = time.perf_counter() - start\n"
        "from training.metrics import METRIC_NAMES, load_metric\n"
        "times = {}\n"
        "for name in METRIC_NAMES:\n"
        "    start = time.perf_counter(); load_metric(name); times[name] = time.perf_counter() - start\n"
        "print(json.dumps({'import': imported, 'times': times, 'accuracy': load_metric('accuracy')"
        ".compute(predictions=['a', 'b'], references=['a', 'a'])}))\n"
    )
    dead = "http://127.0.0.1:9"  # nothing listens there: any network use fails
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(REPO),
           "HF_HOME": str(tmp_path / "hf"), "HTTP_PROXY": dead, "HTTPS_PROXY": dead}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["accuracy"] == {"accuracy": 0.5}
    assert all(seconds < 5 for seconds in result["times"].values()), result  # `import evaluate` itself is slow


def test_accuracy_hand_checked() -> None:
    metric = load_metric("accuracy")
    assert metric.compute(predictions=["a", "b", "c", "a"], references=["a", "b", "a", "b"]) == {"accuracy": 0.5}
    assert metric.compute(predictions=["好", "坏"], references=["好", "坏"]) == {"accuracy": 1.0}
    assert math.isnan(metric.compute(predictions=[], references=[])["accuracy"])


def test_macro_f1_hand_checked() -> None:
    result = load_metric("macro_f1").compute(predictions=["a", "a", "b", "a"], references=["a", "b", "b", "c"])
    # a: tp=1 predicted=3 true=1 -> 2/4; b: tp=1 predicted=1 true=2 -> 2/3; c: never predicted -> 0
    assert result["per_label"] == pytest.approx({"a": 0.5, "b": 2 / 3, "c": 0.0})
    assert result["macro_f1"] == pytest.approx((0.5 + 2 / 3) / 3)


def test_macro_f1_with_explicit_labels_counts_absent_ones_as_zero() -> None:
    result = load_metric("macro_f1").compute(predictions=["a"], references=["a"], labels=["a", "z"])
    assert result["macro_f1"] == pytest.approx(0.5)


def test_confusion_matrix_hand_checked() -> None:
    metric = load_metric("confusion_matrix")
    result = metric.compute(predictions=["pos", "neg", "neg", "neu"], references=["pos", "pos", "neg", "neg"])
    assert result == {"labels": ["neg", "neu", "pos"], "matrix": [[1, 1, 0], [0, 0, 0], [1, 0, 1]]}
    ordered = metric.compute(predictions=["pos", "neg"], references=["pos", "pos"], labels=["pos", "neu", "neg"])
    assert ordered == {"labels": ["pos", "neu", "neg"], "matrix": [[1, 0, 1], [0, 0, 0], [0, 0, 0]]}


def test_topk_accuracy_hand_checked() -> None:
    metric = load_metric("topk_accuracy")
    ranked = [["hours", "wifi", "menu"], ["menu", "hours", "wifi"], ["wifi", "menu", "hours"]]
    references = ["hours", "hours", "parking"]
    assert metric.compute(predictions=ranked, references=references, k=1)["topk_accuracy"] == pytest.approx(1 / 3)
    assert metric.compute(predictions=ranked, references=references, k=2)["topk_accuracy"] == pytest.approx(2 / 3)
    assert metric.compute(predictions=ranked, references=references, k=3)["topk_accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        metric.compute(predictions=ranked, references=references, k=0)


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=40, deadline=None)
@given(pairs)
def test_metrics_agree_with_sklearn(rows: list[tuple[str, str]]) -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    references, predictions = [list(column) for column in zip(*rows)]
    names = sorted(set(references) | set(predictions))
    assert load_metric("accuracy").compute(predictions=predictions, references=references)["accuracy"] == \
        pytest.approx(sklearn_metrics.accuracy_score(references, predictions))
    assert load_metric("macro_f1").compute(predictions=predictions, references=references)["macro_f1"] == \
        pytest.approx(sklearn_metrics.f1_score(references, predictions, average="macro", zero_division=0))
    matrix = load_metric("confusion_matrix").compute(predictions=predictions, references=references)["matrix"]
    assert matrix == sklearn_metrics.confusion_matrix(references, predictions, labels=names).tolist()


def test_classification_report_overall_and_by_language() -> None:
    references = ["positive", "negative", "neutral", "positive"]
    predictions = ["positive", "negative", "positive", "negative"]
    report = classification_report(references, predictions, ["zh", "zh", "en", "en"])
    assert report["accuracy"] == 0.5 and report["n"] == 4
    # negative: tp=1 predicted=2 true=1 -> 2/3; neutral -> 0; positive: tp=1 predicted=2 true=2 -> 1/2
    assert report["macro_f1"] == pytest.approx((2 / 3 + 1 / 2) / 3)
    assert report["confusion"]["labels"] == ["negative", "neutral", "positive"]
    assert report["confusion"]["matrix"] == [[1, 0, 0], [0, 0, 1], [1, 0, 1]]
    assert report["by_language"] == {"en": {"accuracy": 0.0, "macro_f1": 0.0, "n": 2},
                                     "zh": {"accuracy": 1.0, "macro_f1": 1.0, "n": 2}}
    json.dumps(report)  # goes into the store and the owner's report as JSON


def test_classification_report_checks_lengths_and_handles_no_languages() -> None:
    assert classification_report(["a"], ["a"])["by_language"] == {}
    with pytest.raises(ValueError, match="differ in length"):
        classification_report(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="differ in length"):
        classification_report(["a"], ["a"], ["zh", "en"])


def test_retrieval_report_top1_top3_and_accuracy_key() -> None:
    ranked = [["k1", "k2", "k3"], ["k2", "k1", "k3"], ["k4", "k5", "k6", "k1"], ["k1"]]
    report = retrieval_report(["k1", "k1", "k1", "k1"], ranked, ["zh", "en", "en", "zh"])
    assert report["top1"] == report["accuracy"] == 0.5
    assert report["top3"] == 0.75 and report["n"] == 4
    assert report["by_language"]["en"] == {"accuracy": 0.0, "top1": 0.0, "top3": 0.5, "n": 2}
    assert report["by_language"]["zh"] == {"accuracy": 1.0, "top1": 1.0, "top3": 1.0, "n": 2}


def test_most_confused_and_misclassified() -> None:
    references = ["pos", "pos", "pos", "neg", "neu", "neu"]
    predictions = ["neg", "neg", "pos", "pos", "neg", "neg"]
    assert most_confused(references, predictions, top=2) == [("neu", "neg", 2), ("pos", "neg", 2)]
    assert most_confused(references, predictions)[-1] == Confusion("neg", "pos", 1)
    texts = ["t1", "t2", "t3", "t4", "t5", "t6"]
    assert misclassified(texts, references, predictions, limit=2) == [Mistake("t1", "pos", "neg"),
                                                                      ("t2", "pos", "neg")]
    assert len(misclassified(texts, references, predictions)) == 5
    assert misclassified(texts, references, references) == []
