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
from shop.report.text import build_report_text, build_status_text, duration, model_lines
from shop.report.weekly import build_weekly_report
from shop.texts import learning_text
from shop.texts.owner import OWNER
from storage.clock import to_timestamp
from storage.store import Store
from tests.botkit import BOSS, BotHarness, bot_settings
from tests.test_suggestions import fake_embed

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


def _status_with_refused(settings, version: str, task: str, metrics: dict, why: str) -> tuple[str, str]:
    """/status in English and Chinese after one refused candidate with these metrics."""
    with Store(settings.paths.database) as store:
        store.adapters.add_candidate(version, task, f"{task}/{version}", metrics, "0" * 64, "bundled")
        store.adapters.set_status(version, "rejected", [why])
        return (build_status_text(settings, store, "base", retraining=False, language="en"),
                build_status_text(settings, store, "base", retraining=False, language="zh"))


def test_status_shows_a_refused_first_candidate_with_its_n_and_interval(make_settings) -> None:
    metrics = {"accuracy": 0.872, "n": 360, "low": 0.834, "high": 0.903, "method": "cv", "folds": 5}
    text, zh = _status_with_refused(make_settings(), "s-1", "sentiment", metrics,
                                    "accuracy 0.872 [0.834, 0.903] (n=360) < threshold 0.900")
    assert "• sentiment model: base model (no trained version yet)" in text
    assert ("latest candidate s-1 refused: accuracy 87.2% [83.4%–90.3%], n=360, 5-fold CV over all labelled data. "
            "Why: accuracy 0.872 [0.834, 0.903] (n=360) < threshold 0.900") in text
    assert "最近的候选 s-1 未启用：准确率 87.2% [83.4%–90.3%]，n=360，5 折交叉验证" in zh


def test_status_names_an_estimate_on_a_test_split_enlarged_from_train(make_settings) -> None:
    metrics = {"accuracy": 0.861, "n": 195, "low": 0.806, "high": 0.903, "method": "holdout+refit", "folds": 0}
    text, zh = _status_with_refused(make_settings(), "f-1", "faq", metrics, "regresses 0.030 against active f-0")
    assert ("86.1% [80.6%–90.3%], n=195, held-out set (test split + train rows), shipped refitted on all data"
            in text)
    assert "86.1% [80.6%–90.3%]，n=195，留出集（测试集加部分训练数据），上线模型用全部数据重训" in zh


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


# --------------------------------------------------------------------------- numbers a shop owner understands
FRIDAY = datetime(2025, 3, 14, 12, tzinfo=UTC)  # 20:00 in Asia/Shanghai; the week began on Monday 2025-03-10


def decided(store: Store, customer: int, text: str, kind: str, action: str, when: datetime,
            label: str | None = None) -> int:
    """A stored message and the bot's decision on it, made at `when`; returns the decision id."""
    store.customers.touch(customer, "zh")
    message = store.messages.add(customer, customer, customer, text)
    decision = store.decisions.add(message.id, kind, label, 0.5, action)
    store.decisions.table.update(decision.id, {"created_at": to_timestamp(when)})
    return decision.id


def corrected_after(store: Store, decision_id: int, delay: timedelta, kind: str, **values: Any) -> None:
    """A staff correction of the decision, `delay` after it was made."""
    correction = store.corrections.add(decision_id, 9, kind, **values)
    made = datetime.fromisoformat(store.decisions.get(decision_id).created_at) + delay
    store.corrections.table.update(correction.id, {"created_at": to_timestamp(made)})


@pytest.fixture
def week(make_settings) -> Any:
    """Ten questions this week (5 answered right without staff, 4 handed off), reviews, and two older weeks."""
    settings = make_settings(shop={"languages": ["en", "zh"]})
    store = Store(settings.paths.database)
    for key in ("hours", "menu"):
        store.faq.upsert(key, "en", key, f"about {key}", key, "seed")
    asked = FRIDAY - timedelta(days=2)
    for n in range(4):  # answered, nobody checked: contained
        decided(store, 10 + n, f"hours {n}?", "question", "answered", asked, "hours")
    confirmed = decided(store, 14, "hours?", "question", "answered", asked, "hours")
    corrected_after(store, confirmed, timedelta(minutes=1), "confirm")  # confirmed: contained (not an answer)
    wrong = decided(store, 15, "menu?", "question", "answered", asked, "hours")
    corrected_after(store, wrong, timedelta(minutes=20), "faq", new_label="menu")  # corrected: not contained
    first = decided(store, 16, "有停车券吗", "question", "handoff", asked)
    corrected_after(store, first, timedelta(minutes=10), "answer", answer_text="凭小票到前台领取停车券")
    second = decided(store, 17, "停车券怎么领", "question", "handoff", asked)
    corrected_after(store, second, timedelta(minutes=30), "answer", answer_text="前台领取，每单一张")
    decided(store, 18, "可以免费停车吗", "question", "handoff", asked)  # nobody answered yet
    dog = decided(store, 19, "can I bring my dog", "question", "handoff", asked)
    corrected_after(store, dog, timedelta(hours=3), "faq", new_label="menu")
    reviews = (("珍珠太硬了，再也不来了", "negative"), ("珍珠煮得太硬", "negative"), ("奶茶很好喝", "positive"),
               ("奶茶还行", "neutral"))
    for n, (text, label) in enumerate(reviews):
        decided(store, 30 + n, text, "review", "acknowledged", asked, label)
    sweet = decided(store, 40, "奶茶太甜了", "review", "acknowledged", asked, "positive")
    corrected_after(store, sweet, timedelta(minutes=5), "label", new_label="negative")  # staff's label counts
    for n in range(4):  # two and three weeks ago
        decided(store, 50 + n, f"old {n}?", "question", "answered" if n == 0 else "handoff",
                FRIDAY - timedelta(days=14), "hours")
    for n in range(2):
        decided(store, 60 + n, f"last week {n}?", "question", "answered", FRIDAY - timedelta(days=7.5), "hours")
    yield settings, store
    store.close()


@pytest.mark.parametrize(("language", "expected"), [
    ("en", ["Questions: 10, answered by the bot 6 (60%), handed to staff 4",
            ("Answered right without staff: 50% (answered by the bot and not corrected by staff, of all questions) "
             "· handed to staff: 40%"),
            "Median time to a staff answer: 25 min (4 questions)",
            "Reviews: 5 · 😊 1 · 😐 1 · 😞 3",
            "😞 Negative reviews mention: 太硬 ×2, 珍珠 ×2"]),
    ("zh", ["问题：10 个，自动回答 6 个（60%），转给店员 4 个",
            "不用店员就答对：50%（机器人回答且未被店员更正，占全部问题）· 转给店员：40%",
            "店员回复的中位时间：25 分钟（4 个问题）",
            "评价：5 条 · 😊 1 · 😐 1 · 😞 3",
            "😞 差评常提到：太硬 ×2，珍珠 ×2"]),
])
def test_report_shows_containment_handoff_rate_answer_time_and_negative_topics(week, language: str,
                                                                                expected: list[str]) -> None:
    settings, store = week
    lines = build_weekly_report(settings, store, language, now=FRIDAY).text.splitlines()
    assert lines[1:6] == expected  # right under the title; staff's label of a review counts, not the bot's
    assert build_report_text(settings, store, language, now=FRIDAY).splitlines()[1:6] == expected


def test_the_numbers_are_saved_with_the_report_and_trend_by_week(week) -> None:
    settings, store = week
    data = build_weekly_report(settings, store, "en", now=FRIDAY).data
    assert data["numbers"] == {"questions": 10, "contained": 5, "containment": 0.5, "handoff_rate": 0.4,
                               "median_answer_seconds": 1500.0, "staff_answers": 4,
                               "negative_topics": [["太硬", 2], ["珍珠", 2]]}
    assert data["containment"] == [{"week": "2025-02-24", "questions": 4, "contained": 1},
                                   {"week": "2025-03-03", "questions": 2, "contained": 2},
                                   {"week": "2025-03-10", "questions": 10, "contained": 5}]


def test_status_shows_the_last_seven_days_in_numbers(week) -> None:
    settings, store = week
    text = build_status_text(settings, store, "base", retraining=False, language="en", now=FRIDAY)
    assert ("Last 7 days: answered right without staff 50% · handed to staff 40% · "
            "median time to a staff answer 25 min") in text
    zh = build_status_text(settings, store, "base", retraining=False, language="zh", now=FRIDAY)
    assert "最近 7 天：不用店员就答对 50% · 转给店员 40% · 店员回复中位时间 25 分钟" in zh
    empty = build_status_text(settings, store, "base", retraining=False, language="en",
                              now=FRIDAY + timedelta(days=30))
    assert "Last 7 days: answered right without staff – · handed to staff – · median time to a staff answer –" in empty


def test_answer_times_read_in_minutes_hours_and_days(make_settings) -> None:
    settings = make_settings()
    assert [duration(settings, "en", s) for s in (5, 1500, 3600, 5400, 47 * 3600, 3 * 86400, None)] == [
        "1 min", "25 min", "1 h", "1.5 h", "47 h", "3 d", "–"]
    assert duration(settings, "zh", 5400) == "1.5 小时"


def purple_pixels(png: bytes) -> int:
    """How many pixels are about tab:purple, the containment line's colour."""
    image = matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3]
    return int((abs(image - [0x94 / 255, 0x67 / 255, 0xbd / 255]).max(axis=-1) < 0.05).sum())


def test_the_chart_draws_the_containment_trend(week) -> None:
    settings, store = week
    report = build_weekly_report(settings, store, "en", now=FRIDAY)
    image = matplotlib.image.imread(io.BytesIO(report.png), format="png")
    assert image.shape[:2] == (360, 900)
    assert purple_pixels(report.png) > 100  # the trend line and its markers
    assert purple_pixels(render_chart(weekly_history([], UTC), "en")) == 0  # no questions: no line


@pytest.mark.parametrize("language", ["en", "zh"])
def test_report_suggests_faq_entries_from_what_staff_had_to_answer(week, language: str) -> None:
    settings, store = week
    report = build_weekly_report(settings, store, language, now=FRIDAY, embed=fake_embed)
    lines = report.text.splitlines()
    title = lines.index(OWNER[language]["suggest_title"])
    expected = {
        "en": ["1. 3 customers asked about “停车券怎么领” this week",
               "   also asked as: “可以免费停车吗”, “有停车券吗”",
               "   staff answered: “前台领取，每单一张”, “凭小票到前台领取停车券”",
               "Press a suggestion's button under this report to make it an FAQ entry."],
        "zh": ["1. 本周有 3 位顾客问到“停车券怎么领”",
               "   其他问法：“可以免费停车吗”，“有停车券吗”",
               "   店员的回答：“前台领取，每单一张”，“凭小票到前台领取停车券”",
               "按报告下面的按钮，把建议变成常见问题。"]}[language]
    assert lines[title + 1:title + 5] == expected
    assert lines[title + 5] == "" and lines[title + 6] == OWNER[language]["report_models"]  # then the models
    assert lines[title - 1] == "" and learning_text(settings, language, "runs_none") == lines[title - 2]
    assert [s.askers for s in report.suggestions] == [3] and report.suggestion_tag
    assert report.data["suggestions"] == [{"askers": 3, "decision_ids": list(report.suggestions[0].decision_ids)}]
    plain = build_weekly_report(settings, store, language, now=FRIDAY).text.splitlines()  # `shopbot report`
    assert plain[plain.index(OWNER[language]["suggest_title"]) + 1] == OWNER[language]["suggest_off"]
    later = build_weekly_report(settings, store, language, now=FRIDAY + timedelta(days=30), embed=fake_embed)
    assert OWNER[language]["suggest_none"] in later.text.splitlines() and later.suggestions == ()


def test_the_report_goes_out_without_suggestions_when_embedding_fails(week) -> None:
    settings, store = week

    def broken(texts: Any) -> Any:
        raise RuntimeError("no model")

    report = build_weekly_report(settings, store, "en", now=FRIDAY, embed=broken)
    assert "• could not be computed this time: RuntimeError: no model" in report.text.splitlines()
    assert report.suggestions == () and report.suggestion_tag is None and "Models:" in report.text
