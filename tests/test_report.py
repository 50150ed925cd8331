"""The weekly owner report: what it says about learning, its PNG chart, and `shopbot report`."""

from __future__ import annotations

import io
import re
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest

import shop.report.chart as report_chart
from bot.limits import MAX_TEXT, utf16_len
from cli import main
from shop.report.chart import render_chart
from shop.report.data import weekly_history
from shop.report.text import build_report_text, build_status_text, model_lines
from shop.report.weekly import build_weekly_report
from shop.texts import learning_text
from shop.texts.owner import OWNER
from storage.clock import to_timestamp
from storage.store import Store
from tests.botkit import BOSS, BotHarness, bot_settings

NOW = datetime.now(UTC)


def outcome(task: str, version: str, candidate: float, active: float | None, base: float | None,
            promoted: bool, reasons: list[str], mistakes: list[list[str]] = ()) -> dict[str, Any]:
    """One task's part of a run result, shaped as training.pipeline writes it (asdict(TaskOutcome))."""
    def metrics(accuracy: float) -> dict:
        return {"accuracy": accuracy, "n": 360, "low": accuracy - 0.04, "high": accuracy + 0.03, "method": "cv",
                "folds": 5, "confused": [["negative", "positive", 3], ["neutral", "positive", 1]],
                "mistakes": list(mistakes)}

    return {"task": task, "version": version, "promoted": promoted, "reasons": reasons,
            "metrics": metrics(candidate), "active_version": None,
            "active_metrics": None if active is None else metrics(active),
            "base_metrics": None if base is None else {"accuracy": base, "n": 40},
            "train_seconds": 1.0}


def add_run(store: Store, trigger: str, status: str, result: dict, days_ago: float = 0) -> None:
    run = store.runs.start(trigger)
    store.runs.finish(run, status, "snap", result)
    store.runs.table.update(run, {"started_at": to_timestamp(NOW - timedelta(days=days_ago))})


@pytest.fixture
def history(make_settings) -> tuple[Any, Store]:
    settings = make_settings(shop={"languages": ["en", "zh"]})
    store = Store(settings.paths.database)
    add_run(store, "schedule", "promoted", {"status": "promoted", "reasons": ["sentiment: promoted s-1"], "tasks": {
        "sentiment": outcome("sentiment", "s-1", 0.80, None, None, True, ["accuracy 0.800 ≥ threshold 0.000"]),
        "faq": outcome("faq", "f-1", 0.70, None, 0.55, True, ["ok"])}}, days_ago=21)
    add_run(store, "schedule", "promoted", {"status": "promoted", "reasons": ["sentiment: promoted s-2"], "tasks": {
        "sentiment": outcome("sentiment", "s-2", 0.86, 0.80, None, True, ["ok"]),
        "faq": outcome("faq", "f-2", 0.78, 0.70, 0.55, True, ["ok"])}}, days_ago=14)
    add_run(store, "manual", "skipped", {"status": "skipped", "reasons": [("1 new labelled examples since the last "
                                                                           "retrain, fewer than 5")]}, days_ago=3)
    add_run(store, "schedule", "refused", {"status": "refused", "reasons": ["sentiment: refused s-3"], "tasks": {
        "sentiment": outcome("sentiment", "s-3", 0.84, 0.86, None, False,
                             ["accuracy 0.840 < threshold 0.900", "regresses 0.020 against active s-2"],
                             mistakes=[["珍珠太硬了，再也不来了", "negative", "positive"]]),
        "faq": outcome("faq", "f-3", 0.74, 0.78, 0.55, False, ["accuracy 0.740 < threshold 0.850"])}}, days_ago=1)
    add_run(store, "catchup", "failed", {"status": "failed",
                                         "reasons": ["training process ended with exit code -9 before finishing"]})
    store.customers.touch(5, "zh")
    for kind, label in (("label", "negative"), ("confirm", None)):
        message = store.messages.add(5, 5, 1, "奶茶还行")
        decision = store.decisions.add(message.id, "review", "positive", 0.7, "acknowledged")
        store.corrections.add(decision.id, 9, kind, new_label=label)
    yield settings, store
    store.close()


def test_report_covers_accuracy_trend_comparison_confusions_and_gate_reasons(history) -> None:
    settings, store = history
    report = build_weekly_report(settings, store, "en")
    text = report.text
    assert "Staff checks: 1 confirmed, 1 corrected (sentiment 1" in text  # corrections this week by kind
    trend = next(line for line in text.splitlines() if line.startswith("• sentiment model:") and "→" in line)
    assert re.fullmatch(r"• sentiment model: \S+ 80% → \S+ 86% → \S+ 86%", trend)  # refused: the active one stays
    assert ("• sentiment model: base – · active 86% · candidate 84.0% [80.0%–87.0%], n=360, "
            "5-fold CV over all labelled data → refused s-3") in text  # the estimate with its n and interval
    assert "• FAQ model: base 55% · active 78% · candidate 74.0% [70.0%–77.0%], n=360, 5-fold CV" in text
    assert "why: accuracy 0.840 < threshold 0.900; regresses 0.020 against active s-2" in text
    assert "negative→positive ×3" in text  # the most frequent confusion
    assert "“珍珠太硬了，再也不来了” true: negative, bot: positive" in text
    assert "(owner /retrain): skipped — 1 new labelled examples" in text
    assert "(catch-up): failed — training process ended with exit code -9" in text
    assert "(weekly): refused — sentiment: refused s-3" in text
    assert len(text) <= 4096
    weeks = report.data["weeks"]
    assert len(weeks) == 3 and [w["sentiment"]["served"] for w in weeks] == [0.80, 0.86, 0.86]
    image = matplotlib.image.imread(io.BytesIO(report.png), format="png")
    assert image.shape[:2] == (360, 900)


def test_chinese_report_falls_back_to_english_chart_labels_without_a_cjk_font(history, monkeypatch) -> None:
    settings, store = history
    monkeypatch.setattr(report_chart, "cjk_font", lambda: None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = build_weekly_report(settings, store, "zh")
    assert not [w for w in caught if "Glyph" in str(w.message)]  # no empty boxes for missing characters
    assert "最近一次训练" in report.text and "原因：accuracy 0.840 < threshold 0.900" in report.text
    assert report.png.startswith(b"\x89PNG")


def test_report_without_any_training_still_has_a_chart(make_settings) -> None:
    settings = make_settings()
    with Store(settings.paths.database) as store:
        report = build_weekly_report(settings, store, "en")
    assert "no retraining yet" in report.text and "none this week" in report.text
    assert report.png.startswith(b"\x89PNG")
    assert render_chart(weekly_history([], UTC), "zh").startswith(b"\x89PNG")


def test_shopbot_report_prints_and_saves_text_and_png(tmp_path: Path, history, capsys) -> None:
    settings, store = history
    config = tmp_path / "config.toml"
    config.write_text('[shop]\nlanguages = ["en", "zh"]\n', encoding="utf-8")
    assert main(["--config", str(config), "report", "--language", "en"]) == 0
    out, err = capsys.readouterr()
    assert "Latest retrain" in out and "saved:" in err
    files = sorted(p.suffix for p in settings.paths.reports.iterdir())
    assert files == [".png", ".txt"]
    saved = store.reports.latest()
    assert saved.chart_path.read_bytes().startswith(b"\x89PNG") and saved.text == out.rstrip("\n")


def test_a_report_longer_than_a_message_is_saved_whole_and_reaches_the_owner_cut(tmp_path: Path,
                                                                                  tiny_base: Path) -> None:
    reasons = [f"check {i}: accuracy 0.840 < threshold 0.900" for i in range(150)]
    with BotHarness(bot_settings(tmp_path, tiny_base)) as bot:
        with bot.store() as store:
            add_run(store, "schedule", "refused", {"status": "refused", "reasons": ["sentiment: refused s-1"], "tasks": {
                "sentiment": outcome("sentiment", "s-1", 0.84, None, None, False, reasons)}}, days_ago=1)
            whole = build_weekly_report(bot.settings, store, "en").text
        assert utf16_len(whole) > MAX_TEXT and "check 149" in whole  # the report itself is not cut
        sent = bot.command(BOSS, "report")["text"]  # the emulator refuses a message over MAX_TEXT
        assert utf16_len(sent) == MAX_TEXT and sent.endswith("…") and whole.startswith(sent[:-1])
        assert bot.take_errors() == []


def test_status_shows_a_refused_first_candidate_with_its_n_and_interval(make_settings) -> None:
    settings = make_settings()
    metrics = {"accuracy": 0.872, "n": 360, "low": 0.834, "high": 0.903, "method": "cv", "folds": 5}
    with Store(settings.paths.database) as store:
        store.adapters.add_candidate("s-1", "sentiment", "sentiment/s-1", metrics, "0" * 64, "bundled")
        store.adapters.set_status("s-1", "rejected", ["accuracy 0.872 [0.834, 0.903] (n=360) < threshold 0.900"])
        text = build_status_text(settings, store, "base", retraining=False, language="en")
        zh = build_status_text(settings, store, "base", retraining=False, language="zh")
    assert "• sentiment model: base model (no trained version yet)" in text
    assert ("latest candidate s-1 refused: accuracy 87.2% [83.4%–90.3%], n=360, 5-fold CV over all labelled data. "
            "Why: accuracy 0.872 [0.834, 0.903] (n=360) < threshold 0.900") in text
    assert "最近的候选 s-1 未启用：准确率 87.2% [83.4%–90.3%]，n=360，5 折交叉验证" in zh


def test_a_week_with_more_than_20000_decisions_is_counted_exactly(make_settings) -> None:
    settings = make_settings()
    week, older = to_timestamp(NOW - timedelta(days=1)), to_timestamp(NOW - timedelta(days=9))

    def rows(count: int, task: str, action: str, label: str | None, created_at: str) -> list[dict[str, Any]]:
        return [{"message_id": None, "kind": task, "label": label, "confidence": 0.9, "action": action,
                 "source": "model", "adapter_version": None, "alternatives": "[]", "staff_chat_id": None,
                 "staff_message_id": None, "status": "pending", "created_at": created_at}] * count

    with Store(settings.paths.database) as store:
        with store.transaction():  # oldest first, as the bot writes them
            store.decisions.table.insert_all(
                rows(2_000, "question", "answered", "hours", older) + rows(15_000, "question", "answered", "hours", week)
                + rows(5_000, "question", "handoff", None, week) + rows(600, "review", "acknowledged", "positive", week)
                + rows(100, "review", "acknowledged", "neutral", week)
                + rows(300, "review", "acknowledged", "negative", week), batch_size=5_000)
        text = build_report_text(settings, store, "en", now=NOW)
    assert "Questions: 20000, answered by the bot 15000 (75%), handed to staff 5000" in text
    assert "Reviews: 1000 · 😊 600 · 😐 100 · 😞 300" in text


def test_confirmations_are_never_counted_as_corrections(make_settings) -> None:
    settings = make_settings()
    with Store(settings.paths.database) as store:
        store.customers.touch(5, "zh")
        for kind, label in (("confirm", None), ("confirm", None), ("label", "negative")):
            message = store.messages.add(5, 5, 1, f"奶茶还行 {kind} {label}")
            decision = store.decisions.add(message.id, "review", "positive", 0.7, "acknowledged")
            store.corrections.add(decision.id, 9, kind, new_label=label)
        never = build_status_text(settings, store, "base", retraining=False, language="en")
        add_run(store, "schedule", "promoted", {"status": "promoted", "reasons": [], "tasks": {}}, days_ago=1)
        since = build_status_text(settings, store, "base", retraining=False, language="en")
        report = build_report_text(settings, store, "en")
    assert "Never retrained yet; staff corrections so far: 1" in never
    assert re.search(r"Staff corrections since the last retrain \(.*\): 1$", since, re.MULTILINE)
    assert "Staff checks: 2 confirmed, 1 corrected (sentiment 1 · other FAQ 0 · own answer 0)" in report
    assert "Bot right in checked decisions: 67%" in report


@pytest.mark.parametrize("header", [None, ""])
@pytest.mark.parametrize("language", ["en", "zh"])
def test_weekly_report_has_summary_then_learning_then_models(history, monkeypatch, language: str,
                                                             header: str | None) -> None:
    settings, store = history
    if header is not None:  # the sections must not depend on what the localised header says
        monkeypatch.setitem(OWNER[language], "report_models", header)
    summary = build_report_text(settings, store, language, now=NOW).splitlines()
    models = [OWNER[language]["report_models"], *model_lines(settings, store, language)]
    lines = build_weekly_report(settings, store, language, now=NOW).text.splitlines()
    learning = lines.index(learning_text(settings, language, "trend_title"))
    assert lines[:len(summary) - len(models)] == summary[:-len(models)]  # title, traffic, feedback, examples
    assert learning == len(summary) - len(models) + 1  # after one blank line
    assert lines[-len(models):] == models and lines[-len(models) - 1] == ""
