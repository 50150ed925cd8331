"""`shopbot up`: the token decides between the bot and the sandbox; the sandbox's web API plays
customer, staff and owner against the real bot (tiny model), and refuses requests from elsewhere."""

from __future__ import annotations

import io
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cli
from sandbox.web import Sandbox, prepare, up
from storage.store import Store
from tests.botkit import bot_settings, load_real_runtime


def request(url: str, body: Any = None, content_type: str = "application/json",
            headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """(status, decoded JSON or bytes) of a GET, or a POST when `body` is given."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    sent = urllib.request.Request(url, data=data, headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(sent, timeout=20) as response:
            status, raw, kind = response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        status, raw, kind = error.code, error.read(), error.headers.get("Content-Type", "")
    return status, json.loads(raw) if kind.startswith("application/json") else raw


def wait_state(sandbox: Sandbox, ready, timeout: float = 20) -> dict:
    """Poll /api/state until `ready(state)` is truthy."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        state = request(sandbox.url + "api/state")[1]
        if ready(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"state never got there: {json.dumps(state, ensure_ascii=False)[:2000]}")
        time.sleep(0.1)


def bot_said(state: dict, role: str, after: int = 0) -> list[dict]:
    """What the bot said in `role`'s chat, after message id `after` (other tests share the sandbox)."""
    return [m for m in state["chats"][role]["messages"] if m["from"] == "bot" and m["id"] > after]


def last_ids(sandbox: Sandbox) -> dict[str, int]:
    """Each chat's last message id now: a test's cursor into the module's shared sandbox."""
    chats = request(sandbox.url + "api/state")[1]["chats"]
    return {role: max((m["id"] for m in chat["messages"]), default=0) for role, chat in chats.items()}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Iterator[Sandbox]:
    settings = bot_settings(tmp_path_factory.mktemp("sandbox"), tiny_base)
    prepare(settings, train=False, out=io.StringIO())
    with Sandbox(settings, load_real_runtime) as running:
        yield running


def test_the_page_and_a_customer_question_with_its_staff_mirror(sandbox: Sandbox) -> None:
    status, page = request(sandbox.url)
    assert status == 200 and b"shopbot sandbox" in page and b"/api/state" in page
    start = last_ids(sandbox)
    assert request(sandbox.url + "api/send", {"as": "customer", "text": "Do you sell cheesecake?"})[0] == 200
    state = wait_state(sandbox, lambda s: bot_said(s, "customer", start["customer"])
                       and bot_said(s, "staff", start["staff"]))
    customer = [m for m in state["chats"]["customer"]["messages"] if m["id"] > start["customer"]]
    assert customer[0] == {"id": start["customer"] + 1, "from": "user", "text": "Do you sell cheesecake?",
                           "reply_to": None}
    assert "passed it to our staff" in bot_said(state, "customer", start["customer"])[0]["text"]
    mirror = bot_said(state, "staff", start["staff"])[0]
    assert "Do you sell cheesecake?" in mirror["text"]
    assert any(b["text"].startswith("✍") for row in mirror["buttons"] for b in row)

    # staff answer by replying to the mirror: the customer gets it
    sent = request(sandbox.url + "api/send", {"as": "staff", "text": "Yes, 25 yuan a slice.", "reply_to": mirror["id"]})
    assert sent[0] == 200
    state = wait_state(sandbox, lambda s: any("25 yuan" in m["text"] for m in bot_said(s, "customer")))
    assert [m["reply_to"] for m in state["chats"]["staff"]["messages"]
            if m["from"] == "user" and m["id"] > start["staff"]] == [mirror["id"]]


def test_staff_buttons_pop_ups_media_and_language(sandbox: Sandbox) -> None:
    request(sandbox.url + "api/language", {"code": "en"})
    request(sandbox.url + "api/send", {"as": "customer", "text": "/start"})
    request(sandbox.url + "api/media", {"as": "customer", "kind": "sticker"})
    state = wait_state(sandbox, lambda s: any("only read text" in m["text"] for m in bot_said(s, "customer")))
    assert state["language"] == "en"
    assert any(m["text"] == "🙂 (sticker)" for m in state["chats"]["customer"]["messages"])

    request(sandbox.url + "api/send", {"as": "customer", "text": "The brown sugar tea was great"})
    state = wait_state(sandbox, lambda s: any("brown sugar" in m["text"] and m["buttons"] for m in bot_said(s, "staff")))
    mirror = next(m for m in bot_said(state, "staff") if "brown sugar" in m["text"])
    first = mirror["buttons"][0][0]  # ✅ (a review), a label (no sentiment adapter yet) or 📖 (a question)
    assert request(sandbox.url + "api/press", {"as": "staff", "message_id": mirror["id"], "data": first["data"]})[0] == 200
    state = wait_state(sandbox, lambda s: s["popups"] and any(
        m["id"] == mirror["id"] and m["edited"] and not m["buttons"] for m in bot_said(s, "staff")))
    assert state["popups"][-1] == {"as": "staff", "text": "Saved ✔", "alert": False}
    again = request(sandbox.url + "api/press", {"as": "staff", "message_id": mirror["id"], "data": first["data"]})
    assert again[0] == 400 and "that button is gone" in again[1]["error"]


def test_owner_commands_and_the_report(sandbox: Sandbox) -> None:
    after = last_ids(sandbox)["owner"]
    request(sandbox.url + "api/send", {"as": "owner", "text": "/status"})
    state = wait_state(sandbox, lambda s: bot_said(s, "owner", after))
    assert "status" in bot_said(state, "owner", after)[0]["text"].lower()
    request(sandbox.url + "api/send", {"as": "owner", "text": "/report"})
    state = wait_state(sandbox, lambda s: len(bot_said(s, "owner", after)) >= 2)
    report = bot_said(state, "owner", after)[1]
    assert report["text"]
    if report["photo"]:  # the chart
        status, image = request(sandbox.url + report["photo"].lstrip("/"))
        assert status == 200 and image.startswith(b"\x89PNG")
    assert request(sandbox.url + "api/file/30001/999")[0] == 404


def test_the_owner_edits_an_faq_answer_from_the_page(sandbox: Sandbox) -> None:
    after = last_ids(sandbox)["owner"]
    request(sandbox.url + "api/send", {"as": "owner", "text": "/faq"})
    def faq_lists(state: dict) -> list[dict]:  # not a late message of an earlier test (the report's chart)
        return [m for m in bot_said(state, "owner", after) if m["text"].startswith("📚 FAQ: ")]

    [faq_list] = faq_lists(wait_state(sandbox, faq_lists))
    assert "opening_hours" in faq_list["text"]
    hours = next(b for row in faq_list["buttons"] for b in row if b["text"].startswith("opening_hours"))
    assert request(sandbox.url + "api/press", {"as": "owner", "message_id": faq_list["id"], "data": hours["data"]})[0] == 200
    shown = wait_state(sandbox, lambda s: any(m["id"] == faq_list["id"] and m["text"].startswith("📖")
                                              for m in bot_said(s, "owner", after)))
    entry = next(m for m in bot_said(shown, "owner", after) if m["id"] == faq_list["id"])
    edit = next(b for row in entry["buttons"] for b in row if b["text"] == "✏ answer (English)")
    request(sandbox.url + "api/press", {"as": "owner", "message_id": entry["id"], "data": edit["data"]})
    wait_state(sandbox, lambda s: any(m["text"].startswith("✏ Type") for m in bot_said(s, "owner", after)))
    request(sandbox.url + "api/send", {"as": "owner", "text": "Open 9:00 to 23:00 during the festival."})
    wait_state(sandbox, lambda s: any(m["text"].startswith("✔ Saved") for m in bot_said(s, "owner", after)))
    with Store(sandbox.chat.settings.paths.database) as store:
        assert store.faq.get("opening_hours", "en").answer == "Open 9:00 to 23:00 during the festival."
        assert store.faq.changes()[0].changed_by == sandbox.owner.id


def test_requests_from_elsewhere_and_bad_requests_are_refused(sandbox: Sandbox) -> None:
    url = sandbox.url + "api/send"
    assert request(url, b'{"as": "customer", "text": "hi"}', content_type="text/plain")[0] == 415  # a plain form
    assert request(url, {"as": "customer", "text": "hi"}, headers={"Host": "evil.example:8080"})[0] == 403
    assert request(sandbox.url + "api/state", headers={"Host": "attacker.test"})[0] == 403
    assert request(url, {"as": "admin", "text": "hi"})[1]["error"].startswith('"as" must be one of')
    assert request(url, {"as": "customer", "text": "x" * 4097})[0] == 400
    assert request(url, {"as": "customer", "text": "   "})[0] == 400
    assert request(url, [1, 2])[0] == 400
    assert request(sandbox.url + "api/nothing", {})[0] == 404
    assert request(sandbox.url + "api/press", {"as": "staff", "message_id": 9999, "data": "v1:1:ok"})[0] == 400


# ---------------------------------------------------------------------- `shopbot up`
def test_up_with_a_token_runs_the_real_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.toml").write_text("", encoding="utf-8")
    ran = []
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setattr(cli, "cmd_run", lambda settings, args: ran.append(settings.token) or 0)
    assert cli.main(["--config", str(tmp_path / "config.toml"), "up"]) == 0
    assert ran == ["123:abc"]


def test_up_without_a_token_seeds_trains_once_and_serves_the_page(
        tmp_path: Path, tiny_base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = bot_settings(tmp_path, tiny_base)
    trained = []

    def fake_retrain(settings, trigger, args=None):  # records a run as the real one does
        trained.append(trigger)
        with Store(settings.paths.database) as store:
            store.runs.finish(store.runs.start(trigger), "refused", None, {"status": "refused"})
        return {"status": "refused", "reasons": ["faq: refused (test)"]}

    monkeypatch.setattr("training.pipeline.retrain", fake_retrain)
    out, stop = io.StringIO(), threading.Event()
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(
        up(settings, port=0, out=out, stop=stop, runtime_factory=load_real_runtime)))
    runner.start()
    try:
        import time

        deadline = time.monotonic() + 60
        while "Sandbox ready" not in out.getvalue():
            assert runner.is_alive() and time.monotonic() < deadline, out.getvalue()
            time.sleep(0.05)
        url = re.search(r"open (http://127\.0\.0\.1:\d+/)", out.getvalue())[1]
        assert request(url)[0] == 200
    finally:
        stop.set()
        runner.join(60)
    assert result == [0] and trained == ["cli"]
    text = out.getvalue()
    assert "loaded the demo shop" in text and "5-fold cross-validation" in text and "Training refused" in text
    again = io.StringIO()
    prepare(settings, out=again)  # tried once already: not every start trains again
    assert trained == ["cli"] and "no adapter has passed the quality gate yet" in again.getvalue()


def test_the_page_shows_a_takeover_and_its_resume_button(tmp_path: Path, tiny_base: Path) -> None:
    settings = bot_settings(tmp_path, tiny_base, conversation={"takeover_minutes": 10})
    prepare(settings, train=False, out=io.StringIO())
    with Sandbox(settings, load_real_runtime) as sandbox:
        request(sandbox.url + "api/send", {"as": "customer", "text": "Do you sell mooncakes?"})
        state = wait_state(sandbox, lambda s: bot_said(s, "staff"))
        mirror = bot_said(state, "staff")[0]
        request(sandbox.url + "api/send", {"as": "staff", "text": "Only in autumn.", "reply_to": mirror["id"]})
        state = wait_state(sandbox, lambda s: any("autumn" in m["text"] for m in bot_said(s, "customer")))
        told = len(bot_said(state, "customer"))
        request(sandbox.url + "api/send", {"as": "customer", "text": "Which flavours?"})
        state = wait_state(sandbox, lambda s: any("Which flavours?" in m["text"] for m in bot_said(s, "staff")))
        marked = next(m for m in bot_said(state, "staff") if "Which flavours?" in m["text"])
        assert "You are talking to them" in marked["text"]
        [[resume]] = marked["buttons"]
        assert resume["text"] == "▶ Resume the bot" and len(bot_said(state, "customer")) == told  # the bot said nothing
        request(sandbox.url + "api/press", {"as": "staff", "message_id": marked["id"], "data": resume["data"]})
        state = wait_state(sandbox, lambda s: s["popups"] and "answers" in s["popups"][-1]["text"])
