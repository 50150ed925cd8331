"""The shopbot console script: init, export, run without a token, report, rollback, train, eval and `shopbot chat`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import bot.services as bot_services
from cli import main
from settings import load_settings
from tests.botkit import MINI_SHOP, load_real_runtime, shared_encoder


@pytest.fixture
def config(tmp_path: Path, tiny_base: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"""
[shop]
languages = ["en", "zh"]
demo_data = "{MINI_SHOP}"
[model]
base = "{tiny_base}"
top_layers = 1
[thresholds]
answer_confidence = 1.0
suggest_confidence = 1.0
[conversation]
takeover_minutes = 0
""", encoding="utf-8")  # no takeover: the chat below asks again after a staff reply (tests/test_bot_takeover.py)
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    return path


def test_init_is_idempotent_and_prints_counts(config: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--config", str(config), "init"]) == 0
    first = capsys.readouterr().out
    assert "added:  faq_entries 6, faq_examples 12, sentiment_examples 12" in first
    assert main(["--config", str(config), "init"]) == 0
    second = capsys.readouterr().out
    assert "added:  faq_entries 0, faq_examples 0, sentiment_examples 0" in second
    assert "totals: faq_keys 3, faq_examples 12, sentiment_examples 12" in second


def test_export_writes_examples(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    main(["--config", str(config), "init"])
    out = tmp_path / "examples.jsonl"
    assert main(["--config", str(config), "export", "--kind", "examples", "--format", "jsonl", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 24 and {"text", "label", "split"} <= set(rows[0])
    assert "exported 24 examples" in capsys.readouterr().err


def test_run_without_a_token_explains_and_suggests_chat(config: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--config", str(config), "run"]) == 2
    err = capsys.readouterr().err
    assert "TELEGRAM_BOT_TOKEN is not set" in err and "shopbot chat" in err


def test_bad_config_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--config", str(tmp_path / "missing.toml"), "init"]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_report_and_rollback_without_adapters(config: Path, capsys: pytest.CaptureFixture) -> None:
    main(["--config", str(config), "init"])
    capsys.readouterr()
    assert main(["--config", str(config), "report"]) == 0
    assert "weekly report" in capsys.readouterr().out
    assert main(["--config", str(config), "rollback", "faq"]) == 1
    assert "no adapter is active" in capsys.readouterr().err
    assert main(["--config", str(config), "rollback"]) == 1
    assert capsys.readouterr().err.count("no adapter is active") == 2


def test_chat_plays_customer_staff_and_owner_through_the_real_handlers(
        config: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot_services, "load_runtime_for", load_real_runtime)  # shared tiny encoder
    script = "\n".join(["/start", "Do you sell cakes?", "/staff reply Yes, cheesecake.", "Do you sell cakes?",
                        "/staff press 1", "/sticker", "/owner /status", "/staff press 7", "/quit", "never sent"])
    monkeypatch.setattr("sys.stdin", io.StringIO(script + "\n"))
    assert main(["--config", str(config), "chat"]) == 0
    out = capsys.readouterr().out
    assert "loaded the demo shop" in out  # a fresh database is seeded
    assert "bot → you #2: Hi, welcome to Sweet Drops Bubble Tea!" in out
    assert "passed it to our staff" in out and "🙋 Question for staff" in out
    assert "bot → you #5: From our staff: Yes, cheesecake." in out
    assert "bot → you #7: Yes, cheesecake." in out  # learnt from the staff reply
    assert "[1] ✅ correct   [2] ❌ incorrect" in out and "✔ confirmed by Staff" in out
    assert "I can only read text messages" in out
    assert "bot status" in out and "Serving: base" in out
    assert "  ! no such staff-chat message yet" in out  # nothing left to press: said, not crashed
    assert "never sent" not in out


def test_train_then_eval(config: Path, capsys: pytest.CaptureFixture) -> None:
    main(["--config", str(config), "init"])
    capsys.readouterr()
    assert main(["--config", str(config), "train"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["status"] in ("promoted", "refused") and set(trained["tasks"]) == {"sentiment", "faq"}
    assert main(["--config", str(config), "eval"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert {"snapshot_id", "sentiment", "faq"} <= set(evaluated)
    assert evaluated["sentiment"]["active_version"] == (trained["tasks"]["sentiment"]["version"]
                                                        if trained["tasks"]["sentiment"]["promoted"] else None)


def test_adapters_are_served_after_the_data_folder_is_moved(tmp_path: Path, tiny_base: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    from serving.loading import load_runtime
    from storage.store import Store

    shop = tmp_path / "shop"
    shop.mkdir()
    (shop / "config.toml").write_text(f"""
[shop]
demo_data = "{MINI_SHOP}"
[model]
base = "{tiny_base}"
top_layers = 1
[thresholds]
sentiment_accuracy = 0.0
faq_accuracy = 0.0
max_interval = 1.0
""", encoding="utf-8")  # paths.* are the defaults: var/... inside the shop folder
    main(["--config", str(shop / "config.toml"), "init"])
    capsys.readouterr()
    assert main(["--config", str(shop / "config.toml"), "train"]) == 0
    trained = json.loads(capsys.readouterr().out)
    versions = {task: outcome["version"] for task, outcome in trained["tasks"].items() if outcome["promoted"]}
    assert versions

    moved = (shop.rename(tmp_path / "restored-elsewhere")) / "config.toml"  # a backup restored at another place
    assert main(["--config", str(moved), "health"]) == 0
    healthy = capsys.readouterr().out
    assert all(version in healthy for version in versions.values()), healthy
    settings = load_settings(moved, env={})
    with Store(settings.paths.database) as store:
        runtime = load_runtime(settings, store, shared_encoder(settings))
    assert runtime.serving.versions == versions
