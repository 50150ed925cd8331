"""The sandbox page shows issue 11's conversation, and lets its users press it, through the page's own JSON API
(as tests/test_sandbox.py drives it; the real bot on the tiny model): "did you mean…?" buttons under a customer
question (a pick answers, "none of these" hands off with the out-of-hours text), 👍 / 👎 under an automatic
answer (👎 reaches the staff pane), a takeover (staff answer, the bot stays quiet, the staff pane's marker, ▶ and
/resume replying to a mirror), /review in the staff pane with ✅ / ❌, and the unpromoted candidate's
pre-selected guess on a review mirror.

The page cannot move the clock; it shows the configured `[shop] hours`, so the first sandbox is configured
closed today and tomorrow (in the shop's time zone) and its handoffs say when staff will answer.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sandbox.web import Sandbox, prepare
from storage.store import Store
from tests.botkit import bot_settings, load_real_runtime, publish_refused_sentiment
from tests.test_sandbox import bot_said, last_ids, request, wait_state

MARKER = "You are talking to them"


def closed_today_and_tomorrow(timezone: str) -> list[str]:
    """`[shop] hours` with today and tomorrow closed in `timezone` (so a test crossing midnight stays closed)."""
    today = datetime.now(ZoneInfo(timezone)).weekday()
    return ["closed" if day in (today, (today + 1) % 7) else "10:00-22:00" for day in range(7)]


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Iterator[Sandbox]:
    """Every question is offered "did you mean…?" (the tiny model is never sure; every entry plausible), staff
    answers take the conversation over for 10 minutes, and the shop is closed."""
    folder = tmp_path_factory.mktemp("sandbox-conversation")
    timezone = bot_settings(folder, tiny_base).schedule.timezone
    settings = bot_settings(folder, tiny_base, thresholds={"suggest_confidence": 0.0},
                            conversation={"takeover_minutes": 10}, shop={"hours": closed_today_and_tomorrow(timezone)})
    prepare(settings, train=False, out=io.StringIO())
    with Sandbox(settings, load_real_runtime) as running:
        yield running


@pytest.fixture(scope="module")
def answering(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Iterator[Sandbox]:
    """The bot answers every question by itself, the staff chat is quiet (confident decisions wait for /review), and
    an unpromoted sentiment candidate (refused by the gate) thinks every review positive."""
    settings = bot_settings(tmp_path_factory.mktemp("sandbox-answering"), tiny_base,
                            thresholds={"answer_confidence": 0.0},
                            staff={"mirror": "policy", "sample_rate": 0.0, "digest_time": "", "review_batch": 5})
    prepare(settings, train=False, out=io.StringIO())
    publish_refused_sentiment(settings, "s-pos", "positive")
    with Sandbox(settings, load_real_runtime) as running:
        yield running


def send(sandbox: Sandbox, role: str, text: str, reply_to: int | None = None) -> int:
    """Send as `role` from the page; the new message's id."""
    body = {"as": role, "text": text} | ({} if reply_to is None else {"reply_to": reply_to})
    status, sent = request(sandbox.url + "api/send", body)
    assert status == 200, sent
    return int(sent["message_id"])


def press(sandbox: Sandbox, role: str, message: dict, starts_with: str) -> tuple[int, dict]:
    """Press the button of a shown message whose text starts with `starts_with`: (status, answer)."""
    data = next(b["data"] for row in message["buttons"] for b in row if b["text"].startswith(starts_with))
    return request(sandbox.url + "api/press", {"as": role, "message_id": message["id"], "data": data})


def shown(state: dict, role: str, message_id: int) -> dict:
    """A message as the page shows it now."""
    return next(m for m in state["chats"][role]["messages"] if m["id"] == message_id)


def labels(message: dict) -> list[str]:
    return [b["text"] for row in message["buttons"] for b in row]


def popups_after(sandbox: Sandbox) -> int:
    return len(request(sandbox.url + "api/state")[1]["popups"])


def new_popup(sandbox: Sandbox, seen: int) -> dict:
    state = wait_state(sandbox, lambda s: len(s["popups"]) > seen)
    return state["popups"][seen]


def ask_and_get_offered(sandbox: Sandbox, text: str) -> tuple[dict, dict[str, int]]:
    """The customer asks from the page: the did-you-mean prompt as shown, and the cursors from before."""
    request(sandbox.url + "api/language", {"code": "en"})
    start = last_ids(sandbox)
    send(sandbox, "customer", text)
    state = wait_state(sandbox, lambda s: bot_said(s, "customer", start["customer"]))
    [prompt] = bot_said(state, "customer", start["customer"])
    assert prompt["text"] == "I'm not sure which one you mean. Is it one of these?"
    return prompt, start


def test_did_you_mean_buttons_are_shown_a_pick_answers_and_a_second_press_is_refused(closed: Sandbox) -> None:
    prompt, start = ask_and_get_offered(closed, "When can I come by?")
    assert len(prompt["buttons"]) == 4 and labels(prompt)[-1] == "None of these, ask staff"
    assert bot_said(request(closed.url + "api/state")[1], "staff", start["staff"]) == []  # mirrored once they choose
    pick = prompt["buttons"][0][0]
    assert request(closed.url + "api/press", {"as": "customer", "message_id": prompt["id"], "data": pick["data"]})[0] == 200
    state = wait_state(closed, lambda s: shown(s, "customer", prompt["id"])["edited"]
                       and bot_said(s, "staff", start["staff"]))
    answered = shown(state, "customer", prompt["id"])
    assert answered["text"] != prompt["text"] and labels(answered) == ["👍 Helpful", "👎 Not helpful"]
    [mirror] = bot_said(state, "staff", start["staff"])
    assert "picked this one" in mirror["text"] and "When can I come by?" in mirror["text"]
    again = request(closed.url + "api/press", {"as": "customer", "message_id": prompt["id"], "data": pick["data"]})
    assert again[0] == 400 and "that button is gone" in again[1]["error"]  # the page shows what is there now
    with Store(closed.chat.settings.paths.database) as store:
        decision = store.decisions.by_staff_message(closed.staff_chat, mirror["id"])
        assert decision is not None and (decision.action, decision.suggestion) == ("answered", "picked")


def test_none_of_these_hands_off_with_the_out_of_hours_text(closed: Sandbox) -> None:
    prompt, start = ask_and_get_offered(closed, "Do you have a loyalty card?")
    assert press(closed, "customer", prompt, "None of these")[0] == 200
    state = wait_state(closed, lambda s: shown(s, "customer", prompt["id"])["edited"]
                       and bot_said(s, "staff", start["staff"]))
    handed = shown(state, "customer", prompt["id"])
    assert "We're closed right now: they'll reply here" in handed["text"] and handed["buttons"] == []
    [mirror] = bot_said(state, "staff", start["staff"])
    assert "refused them all" in mirror["text"] and any(t.startswith("✍") for t in labels(mirror))


def take_over(sandbox: Sandbox, question: str, answer: str) -> None:
    """The customer's question goes to staff ("none of these"); staff answer it by ↩ replying to its mirror."""
    prompt, start = ask_and_get_offered(sandbox, question)
    press(sandbox, "customer", prompt, "None of these")
    state = wait_state(sandbox, lambda s: bot_said(s, "staff", start["staff"]))
    [mirror] = bot_said(state, "staff", start["staff"])
    send(sandbox, "staff", answer, reply_to=mirror["id"])
    wait_state(sandbox, lambda s: any(answer in m["text"] for m in bot_said(s, "customer", start["customer"])))


def quiet_turn(sandbox: Sandbox, text: str) -> dict:
    """The taken-over customer writes: nothing for them in their pane, the marked mirror with ▶ in the staff pane."""
    start = last_ids(sandbox)
    send(sandbox, "customer", text)
    state = wait_state(sandbox, lambda s: any(text in m["text"] for m in bot_said(s, "staff", start["staff"])))
    marked = next(m for m in bot_said(state, "staff", start["staff"]) if text in m["text"])
    assert MARKER in marked["text"] and labels(marked) == ["▶ Resume the bot"]
    assert bot_said(request(sandbox.url + "api/state")[1], "customer", start["customer"]) == []  # no bot answer
    return marked


def answered_by_bot(sandbox: Sandbox, text: str) -> dict:
    start = last_ids(sandbox)
    send(sandbox, "customer", text)
    state = wait_state(sandbox, lambda s: bot_said(s, "customer", start["customer"]))
    return bot_said(state, "customer", start["customer"])[0]


def test_a_takeover_is_shown_and_ended_with_the_button_or_with_resume_replying_to_a_mirror(closed: Sandbox) -> None:
    take_over(closed, "Do you sell gift cards?", "Yes, at the counter!")
    marked = quiet_turn(closed, "How much can I put on one?")  # not even "did you mean…?": staff talk with them
    seen = popups_after(closed)
    assert press(closed, "staff", marked, "▶")[0] == 200
    assert new_popup(closed, seen) == {"as": "staff", "text": f"▶ The bot answers {closed.customer.id} again.",
                                       "alert": False}
    state = wait_state(closed, lambda s: shown(s, "staff", marked["id"])["buttons"] == [])
    assert shown(state, "staff", marked["id"])["edited"]
    assert "Is it one of these?" in answered_by_bot(closed, "And do gift cards expire?")["text"]

    take_over(closed, "Can I book a table?", "Sure, for how many?")
    marked = quiet_turn(closed, "For four, tonight")
    start = last_ids(closed)
    send(closed, "staff", "/resume", reply_to=marked["id"])  # ↩ on the mirror, then /resume (the page's chip too)
    state = wait_state(closed, lambda s: bot_said(s, "staff", start["staff"]))
    assert bot_said(state, "staff", start["staff"])[0]["text"] == f"▶ The bot answers {closed.customer.id} again."
    sent = next(m for m in state["chats"]["staff"]["messages"] if m["id"] > start["staff"] and m["from"] == "user")
    assert (sent["text"], sent["reply_to"]) == ("/resume", marked["id"])
    assert "Is it one of these?" in answered_by_bot(closed, "What time is it free?")["text"]
    page = request(closed.url)[1]
    assert b'data-send="/resume"' in page and b'data-send="/review"' in page


def test_thumbs_under_an_automatic_answer_and_thumbs_down_reaches_the_staff_pane(answering: Sandbox) -> None:
    request(answering.url + "api/language", {"code": "en"})
    start = last_ids(answering)
    reply = answered_by_bot(answering, "Do you deliver?")
    assert labels(reply) == ["👍 Helpful", "👎 Not helpful"]
    assert bot_said(request(answering.url + "api/state")[1], "staff", start["staff"]) == []  # quiet: it waits

    seen = popups_after(answering)
    press(answering, "customer", reply, "👍")
    assert new_popup(answering, seen) == {"as": "customer", "text": "Thanks! Glad it helped 😊", "alert": False}
    state = wait_state(answering, lambda s: "👍 Helpful ✓" in labels(shown(s, "customer", reply["id"])))
    marked = shown(state, "customer", reply["id"])
    press(answering, "customer", marked, "👍")  # the same tap again
    assert new_popup(answering, seen + 1)["text"] == "Got it, your rating is already in."
    press(answering, "customer", marked, "👎")  # the one change of mind: final, and staff are told
    assert "asked our staff" in new_popup(answering, seen + 2)["text"]
    state = wait_state(answering, lambda s: len(bot_said(s, "staff", start["staff"])) >= 2
                       and shown(s, "customer", reply["id"])["buttons"] == [])
    mirror, alert = bot_said(state, "staff", start["staff"])[:2]
    assert "Do you deliver?" in mirror["text"] and any(t.startswith("✅") for t in labels(mirror))
    assert "did not help" in alert["text"] and alert["reply_to"] == mirror["id"]
    gone = request(answering.url + "api/press", {"as": "customer", "message_id": reply["id"],
                                                 "data": marked["buttons"][0][1]["data"]})
    assert gone[0] == 400 and "that button is gone" in gone[1]["error"]


def test_review_in_the_staff_pane_with_its_buttons_and_the_candidates_guess(answering: Sandbox) -> None:
    request(answering.url + "api/language", {"code": "en"})
    start = last_ids(answering)
    answered_by_bot(answering, "Can I pay by card?")  # confident: waits for /review
    answered_by_bot(answering, "The brown sugar milk was lovely")  # the candidate thinks it positive: waits too
    assert bot_said(request(answering.url + "api/state")[1], "staff", start["staff"]) == []

    send(answering, "staff", "/review")
    state = wait_state(answering, lambda s: {"Can I pay by card?", "brown sugar"} <= {
        key for m in bot_said(s, "staff", start["staff"]) for key in ("Can I pay by card?", "brown sugar")
        if key in m["text"]})
    print("\nthe page's state after /review:\n" + json.dumps(state["chats"]["staff"]["messages"][-3:],
                                                           ensure_ascii=False, indent=1))
    said = bot_said(state, "staff", start["staff"])
    assert said[0]["text"].startswith("🔎 The ") and "most worth a look" in said[0]["text"]
    question = next(m for m in said if "Can I pay by card?" in m["text"])
    review = next(m for m in said if "brown sugar" in m["text"])
    assert labels(question) == ["✅ correct", "❌ incorrect"]
    assert "unpromoted model" in review["text"] and labels(review)[0] == "✅ positive"

    seen = popups_after(answering)
    press(answering, "staff", question, "✅")
    assert new_popup(answering, seen) == {"as": "staff", "text": "Saved ✔", "alert": False}
    press(answering, "staff", review, "✅ positive")
    assert new_popup(answering, seen + 1)["text"] == "Saved ✔"
    state = wait_state(answering, lambda s: all(shown(s, "staff", m["id"])["buttons"] == [] for m in (question, review)))
    with Store(answering.chat.settings.paths.database) as store:
        for message, status in ((question, "confirmed"), (review, "corrected")):
            decision = store.decisions.by_staff_message(answering.staff_chat, message["id"])
            assert decision is not None and decision.status == status
