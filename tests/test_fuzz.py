"""Bad input, fuzzed (hypothesis): over 10,000 generated updates through the real bot.

The real application (every handler, the error handler, the rate limiter, storage on a WAL file)
polls the Bot API emulator, as in production. Only the model is a stand-in: `FuzzRuntime`
decides from a hash of the text (question answered / handed off / review with a label), so that
ten thousand updates take a minute on two cores; the model has its own tests. Each hypothesis
example is a batch of updates: texts (empty, whitespace, 4,096 characters, emoji, RTL,
zero-width, control characters, SQL- and HTML-looking), commands (owner commands, /faq
included, from customers), stickers, photos, voice, edits, channel posts, group messages, customers writing in
the staff chat, staff replies, and button presses honest or forged (random, truncated,
over-long, other versions, unknown or other messages' decision ids, no data; the staff buttons' "v1:" and
the takeover's "t1:"), by staff or by customers. After each batch:

* no handler raised (the error handler saw nothing);
* every private message got a reply, and every text is stored byte-identical with a decision
  (answered, handed off or acknowledged) mirrored to the staff chat, unless /forget removed it;
* nothing was written on an unauthorised user's behalf: every correction is by staff, no run
  was started, no adapter added; customers' presses are refused and every press is answered.
"""

from __future__ import annotations

import itertools
import os
import time
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import bot.services as bot_services
from bot import callbacks
from sandbox.emulator import FakeUser, as_api_message
from serving.prediction import Prediction
from shop.texts import customer_text, staff_text
from tests.botkit import MEI, STAFF_CHAT, BotHarness, bot_settings

MIN_UPDATES = 10_000
DEFAULT_EXAMPLES = 100
EXAMPLES = int(os.environ.get("SHOPBOT_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))  # more: a longer fuzz run
BATCH = (100, 130)  # updates per example
FAQ_KEYS = ("opening_hours", "price_milk_tea", "delivery", "no_such_key")  # the last one is not in the shop

CUSTOMERS = [FakeUser(5000 + i, name, language) for i, (name, language) in enumerate([
    ("Ann", "en"), ("小美", "zh-hans"), ("<b>Bob</b>", None), ("&amp; Co", "ru"), ("\u202eevil", "ar"),
    ("🧋🧋", "zh"), ("Zoë\u200b", ""), ("'; DROP TABLE customers;--", "en-GB")])]

NASTY = [
    " ", "   ", "\t", "\n\n", "\u200b", "\u200b\u200c\u200d\ufeff", "\u200e\u200f", "\u202eRTL override\u202c",
    "مرحبا، هل لديكم شاي بالحليب؟", "שלום, מתי אתם פתוחים?", "🧋", "👨‍👩‍👧‍👦🏳️‍🌈", "🇨🇳🇬🇧", "\x00", "\x07\x08\x1b[31m",
    "'; DROP TABLE messages; --", "1' OR '1'='1", "Robert'); DROP TABLE customers;--", "\" OR \"\"=\"",
    "<b>bold</b>", "<script>alert(1)</script>", "</b>", "<", "&amp;", "&lt;3", "%s %d {0} {name} {{}}",
    "\\", "\\x00", "/start@shop_test_bot", "null", "NaN", "undefined", "ｆｕｌｌ ｗｉｄｔｈ", "Ünïcödé ñ",
    "你们几点开门？", "How much is a bubble milk tea?", "The tea was awful.", "A\u0301\u0302\u0303", "\ud7ff\ue000\uffff",
    "𝕳𝖊𝖑𝖑𝖔", "\U0010fffd",
]

texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(NASTY),
    st.lists(st.sampled_from(NASTY), min_size=2, max_size=6).map("".join),
    st.tuples(st.text(min_size=1, max_size=4), st.sampled_from([4096, 4095, 3000])).map(
        lambda pair: (pair[0] * (pair[1] // len(pair[0]) + 1))[:pair[1]]),
    st.sampled_from(["x", "好", "🧋", "\u200b", "'"]).map(lambda c: c * 4096),
)
blank_or_text = st.one_of(st.just(""), texts)
callback_data = st.one_of(
    st.none(),
    st.text(max_size=80),
    st.builds(lambda version, decision, action, arg: f"{version}:{decision}:{action}" + ("" if arg is None else f":{arg}"),
              st.sampled_from(["v1", "v1", "v0", "v2", "V1", "v01"]),
              st.one_of(st.integers(1, 400), st.integers(-3, 0), st.integers(10**17, 10**20)),
              st.sampled_from([*tuple(callbacks.ButtonAction), "zz", "OK", ""]),
              st.one_of(st.none(), st.sampled_from(["0", "1", "4", "5", "01", "-1", "positive", "happy", "x" * 20]))),
    st.tuples(st.integers(1, 400), st.sampled_from(tuple(callbacks.ButtonAction)), st.integers(0, 12)).map(
        lambda t: f"v1:{t[0]}:{t[1]}"[:t[2]]),  # truncated
    # the customers' own buttons (bot/handlers/conversation.py), pressed where they never are: on staff-chat messages
    st.builds(lambda decision, action, cut: f"c1:{decision}:{action}"[:cut],
              st.one_of(st.integers(1, 400), st.integers(-3, 0), st.integers(10**17, 10**20)),
              st.sampled_from(["p0", "p1", "p2", "p3", "no", "up", "dn", "UP", "", "up:1"]), st.integers(3, 80)),
    st.builds(lambda version, action, decision: f"{version}:{action}:{decision}",  # ▶ resume the bot (takeover)
              st.sampled_from(["t1", "t1", "t0", "T1", "t2"]), st.sampled_from(["r", "r", "x", "R", ""]),
              st.one_of(st.integers(1, 400), st.integers(-3, 0), st.integers(10**17, 10**20), st.just("01"))),
    st.tuples(st.integers(1, 400), st.integers(0, 8)).map(lambda t: f"t1:r:{t[0]}"[:t[1]]),  # truncated
)
customer = st.sampled_from(CUSTOMERS)
pick = st.integers(0, 15)  # which of the newest staff-chat messages an action targets

actions = st.one_of(
    st.tuples(st.just("text"), customer, blank_or_text),
    st.tuples(st.just("text"), customer, texts),
    st.tuples(st.just("command"), customer, st.sampled_from(
        ["start", "help", "forget", "status", "retrain", "rollback", "report", "faq", "cancel", "menu",
         "start@shop_test_bot"]),
        st.sampled_from(["", "sentiment", "faq", "'; --", "x" * 200])),
    st.tuples(st.just("media"), customer, st.sampled_from(["sticker", "photo", "voice", "caption"]), texts),
    st.tuples(st.just("edit"), customer, texts),
    st.tuples(st.just("channel"), texts),
    st.tuples(st.just("group"), customer, texts),
    st.tuples(st.just("in_staff_chat"), customer, texts, pick),
    st.tuples(st.just("staff_reply"), texts, pick),
    st.tuples(st.just("press"), st.sampled_from(["staff", "customer"]), pick, st.integers(0, 12)),
    st.tuples(st.just("forged_press"), st.sampled_from(["staff", "customer"]), pick, callback_data),
)


class FuzzRuntime:
    """Stand-in for the model: a deterministic decision from a hash of the text."""

    serving = SimpleNamespace(version="fuzz", versions={}, encoder=None)

    def decide(self, text: str) -> Prediction:
        h = zlib.crc32(text.encode("utf-8", "surrogatepass"))
        alternatives = tuple((key, 0.9 - 0.2 * i) for i, key in enumerate(FAQ_KEYS[h % 2:] + FAQ_KEYS[:h % 2]))
        if h % 3 == 0:
            label = ("positive", "neutral", "negative")[h // 3 % 3]
            return Prediction("review", label, 0.8, False, ((label, 0.8),), "model", "fuzz", 0.1)
        return Prediction("question", alternatives[0][0], 0.9, h % 3 == 1, alternatives, "model", "fuzz", 0.9)

    def decide_batch(self, texts: list[str]) -> list[Prediction]:
        return [self.decide(text) for text in texts]

    def remember(self, text: str, task: str, label: str) -> None:
        """Corrections are not remembered: every decision stays a function of the text."""

    def swap(self, serving: object) -> object:
        """Nothing to swap (the FAQ index rebuild is a no-op for the stand-in, see `bot`)."""
        return serving


@dataclass
class Expect:
    """What a batch must have led to."""

    texts: list[tuple[int, int, str]] = field(default_factory=list)  # (chat, message id, text) to be stored
    replies: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # private chat -> replies owed
    forgotten: set[tuple[int, int]] = field(default_factory=set)  # (chat, message id) /forget removed
    refused_presses: set[str] = field(default_factory=set)  # query ids pressed by customers
    customer_button_presses: set[str] = field(default_factory=set)  # "c1:" data: refused by the customer buttons
    presses: set[str] = field(default_factory=set)  # every query id


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotHarness]:
    runtime = FuzzRuntime()
    with pytest.MonkeyPatch.context() as patch:
        # the stand-in has no encoder to rebuild the FAQ index with after a staff answer: keep the old one
        patch.setattr(bot_services, "_rebuilt_index", lambda settings, serving: serving)
        # Flood limits off: the fuzz sends thousands of messages in minutes, far over Telegram's 20/min to the
        # staff group; paced, it would take hours. The pacing itself is tested in test_emulator and test_bot_*.
        with BotHarness(bot_settings(tmp_path_factory.mktemp("fuzz")), runtime_factory=lambda s: runtime,
                        flood_limits=False) as harness:
            yield harness


class Player:
    """Turns generated actions into updates on the emulator and records what they must lead to."""

    def __init__(self, bot: BotHarness) -> None:
        self.bot, self.emulator = bot, bot.emulator
        self.last_sent: dict[int, dict] = {}
        self.query_ids = (f"fuzz-{n}" for n in itertools.count())
        self.updates = 0

    def staff_message(self, newest: int) -> dict | None:
        """The n-th newest staff-chat message (read directly: copying thousands each time is too slow)."""
        emulator = self.emulator
        with emulator._cond:  # emulator internals, as tests/botkit.press_raw: no public lookup by id
            last = emulator._last_message_id.get(STAFF_CHAT, 0)
            for message_id in range(last - newest, 0, -1):
                stored = emulator._messages.get((STAFF_CHAT, message_id))
                if stored is not None and not stored["deleted"]:
                    return as_api_message(stored)
        return None

    def private(self, user: FakeUser, sent: dict, expect: Expect, text: str | None = None) -> None:
        expect.replies[user.id] += 1
        self.last_sent[user.id] = sent
        if text:
            expect.texts.append((user.id, sent["message_id"], text))

    def play(self, action: tuple, expect: Expect) -> None:
        emulator, kind = self.emulator, action[0]
        self.updates += 1
        if kind == "text":
            _, user, text = action
            self.private(user, emulator.send_text(user, text), expect, text)
        elif kind == "command":
            _, user, command, args = action
            sent = emulator.send_command(user, command, args)
            self.private(user, sent, expect)
            if command == "forget":
                expect.forgotten |= {(chat, mid) for chat, mid, _ in expect.texts if chat == user.id}
        elif kind == "media":
            _, user, media, caption = action
            sent = emulator.send_photo(user, caption=caption or None) if media == "caption" else \
                getattr(emulator, f"send_{media}")(user)
            self.private(user, sent, expect)
        elif kind == "edit":
            _, user, text = action
            if user.id in self.last_sent and "text" in self.last_sent[user.id]:
                emulator.send_edited_text(user, self.last_sent[user.id], text)  # edits are ignored: no reply
            else:
                self.private(user, emulator.send_text(user, text), expect, text)
        elif kind == "channel":
            emulator.send_channel_post(-100777, action[1] or "post")
        elif kind == "group":
            _, user, text = action
            emulator.send_text(user, text or ".", chat_id=-100888)
        elif kind == "in_staff_chat":  # a customer who got into the staff chat: nothing they say is acted on
            _, user, text, newest = action
            target = self.staff_message(newest)
            if target is not None and text:
                emulator.reply_to(user, target, text)
            else:
                emulator.send_text(user, text or ".", chat_id=STAFF_CHAT)
        elif kind == "staff_reply":
            _, text, newest = action
            target = self.staff_message(newest)
            if target is None:
                self.updates -= 1
            else:
                emulator.reply_to(MEI, target, text or ".")
        elif kind == "press":
            _, who, newest, number = action
            target = self.staff_message(newest)
            offered = [b["callback_data"] for row in ((target or {}).get("reply_markup") or {}).get(
                "inline_keyboard", []) for b in row]
            if not offered:
                self.updates -= 1
                return
            user = MEI if who == "staff" else CUSTOMERS[number % len(CUSTOMERS)]
            query = emulator.press_button(user, target, offered[number % len(offered)])
            expect.presses.add(query["id"])
            if who != "staff":
                expect.refused_presses.add(query["id"])
        elif kind == "forged_press":
            _, who, newest, data = action
            target = self.staff_message(newest)
            user = MEI if who == "staff" else CUSTOMERS[newest % len(CUSTOMERS)]
            query_id = next(self.query_ids)
            with emulator._cond:  # open the query id, as tests/botkit.press_raw does for a modified client
                emulator._open_queries.add(query_id)
            query = {"id": query_id, "from": user.to_api(), "chat_instance": "fuzz"}
            if target is not None:
                query["message"] = target
            else:
                query["inline_message_id"] = "fuzz-inline"
            if data is not None:
                query["data"] = data
            emulator.push_update({"callback_query": query})
            expect.presses.add(query_id)
            if isinstance(data, str) and data.startswith("c1:"):
                expect.customer_button_presses.add(query_id)
            elif who != "staff":
                expect.refused_presses.add(query_id)


def wait_until(condition, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


def bot_messages(emulator) -> dict[int, int]:
    """{chat id: bot messages sent there} (emulator internals: `messages()` would copy thousands each poll)."""
    counts: dict[int, int] = defaultdict(int)
    with emulator._cond:
        for (chat, _), stored in emulator._messages.items():
            if stored["from_bot"]:
                counts[chat] += 1
    return counts


def answered_queries(emulator) -> set[str]:
    """Callback query ids the bot answered."""
    with emulator._cond:
        return {p["callback_query_id"] for m, p in emulator._requests if m == "answerCallbackQuery"}


def settle(emulator, quiet_s: float = 0.15) -> None:
    """Wait until the bot made no Bot API call but getUpdates for `quiet_s` (follow-ups such as edits done)."""
    def busy_calls() -> int:
        with emulator._cond:  # emulator internals: `requests` would copy every call so far
            return sum(1 for method, _ in emulator._requests if method != "getUpdates")

    last, since = busy_calls(), time.monotonic()
    deadline = since + 20
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        time.sleep(0.03)
        now = busy_calls()
        if now != last:
            last, since = now, time.monotonic()


def check_batch(bot: BotHarness, expect: Expect, chat_counts: dict[int, int]) -> None:
    emulator = bot.emulator
    # the bot has fetched everything, replied to every private message, answered every press, mirrored all
    wait_until(lambda: emulator.pending_updates() == 0, "the bot fetched every update")
    wait_until(lambda: all(counts[chat] >= chat_counts.get(chat, 0) + owed for counts in [bot_messages(emulator)]
                           for chat, owed in expect.replies.items()), f"replies owed: {dict(expect.replies)}")
    wait_until(lambda: expect.presses <= answered_queries(emulator), "every button press answered")
    with bot.store() as store:
        wait_until(lambda: store.decisions.table.count_where("staff_message_id is null") == 0,
                   "every decision mirrored to the staff chat")
    assert bot.take_errors(timeout=0) == []

    with bot.store() as store, store.transaction():  # one snapshot: the bot may still be writing
        for chat, message_id, text in expect.texts:
            rows = list(store.messages.table.rows_where("chat_id = ? and telegram_message_id = ?", [chat, message_id]))
            if (chat, message_id) in expect.forgotten:
                assert rows == [], "/forget left a message behind"
                continue
            [row] = rows
            assert row["text"] == text and row["text"].encode("utf-8", "surrogatepass") == text.encode(
                "utf-8", "surrogatepass")
            [decision] = store.decisions.table.rows_where("message_id = ?", [row["id"]])
            assert decision["action"] in ("answered", "handoff", "acknowledged")
            assert (decision["action"] == "acknowledged") == (decision["kind"] == "review")
        corrections = store.corrections.all()
        assert {c.staff_id for c in corrections} <= {MEI.id}
        assert store.decisions.table.count_where("status != 'pending'") == len({c.decision_id for c in corrections})
        assert store.runs.all() == [] and store.adapters.table.count == 0  # no owner command got through
        # nor any FAQ edit: the only FAQ changes are the entries staff's typed answers created
        assert all(c.key.startswith("staff-") and c.old is None and c.changed_by == MEI.id
                   for c in store.faq.changes()) and store.faq.retired_keys() == set()
        staff_keys = {row["key"] for row in store.faq.table.rows_where("source = 'staff'")}
        assert staff_keys <= {c.new_label for c in corrections if c.kind == "answer"}
        # no customer button press got through: nothing picked, refused, rated or learnt from a customer
        assert store.decisions.table.count_where(
            "customer_feedback is not null or suggestion in ('picked', 'refused')") == 0
        assert [e for e in store.examples.all("faq") if e.source == "customer"] == []
    customer_refusals = {customer_text(bot.settings, language, key) for language in ("en", "zh")
                         for key in ("press_forged", "press_not_yours", "press_stale")}
    refusal = staff_text(bot.settings, "not_allowed")
    answers = {p["callback_query_id"]: p for _, p in emulator.calls("answerCallbackQuery")}
    for query_id in expect.customer_button_presses:
        assert answers[query_id].get("text") in customer_refusals and answers[query_id].get("show_alert") is True
    for query_id in expect.refused_presses:
        assert answers[query_id].get("text") == refusal and answers[query_id].get("show_alert") is True


def test_ten_thousand_generated_updates_break_nothing(bot: BotHarness) -> None:
    player = Player(bot)

    # no shrinking: a failing batch is printed as generated (derandomized, so a rerun repeats it)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, print_blob=True,
              phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
    @given(st.lists(actions, min_size=BATCH[0], max_size=BATCH[1]))
    def batch(steps: list[tuple]) -> None:
        chat_counts = bot_messages(bot.emulator)
        expect = Expect()
        for step in steps:
            player.play(step, expect)
        check_batch(bot, expect, chat_counts)

    started = time.monotonic()
    batch()
    elapsed = time.monotonic() - started
    settle(bot.emulator)
    assert bot.take_errors() == []  # nothing failed after the last batch's checks either
    print(f"\nfuzz: {player.updates} updates in {elapsed:.0f}s ({player.updates / elapsed:.0f}/s)")
    if EXAMPLES >= DEFAULT_EXAMPLES:
        assert player.updates >= MIN_UPDATES
