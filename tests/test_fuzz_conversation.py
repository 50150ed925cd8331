"""The customers' own buttons and human takeovers, fuzzed (hypothesis) through the real bot, against a model of
what each step must do.

The bot of tests/test_fuzz.py (the real application on the emulator, `FuzzRuntime` deciding from a hash of the
text), with "did you mean…?" on (every question the stand-in is unsure of is offered its entries) and takeovers
of 30 minutes (they end only by ▶ or /resume here). Each hypothesis example is a batch of steps by a few
customers and one staff member:

* customers write (answered with 👍 / 👎, offered "did you mean…?", handed off, reviews acknowledged; while
  taken over: nothing) and press the REAL buttons of their own chat: picks, "none of these", 👍 / 👎, once or
  twice in a row, on buttons still shown or long gone (answered, expired, rated), and other customers press them;
* staff reply to a customer's mirror (an answer or a relayed message: the conversation is theirs), reply
  again while it is taken over, press ✅ on a mirror, press ▶ on a takeover mirror (customers press it too),
  send /resume replying to a mirror or naming the customer; the offers waiting longer than
  `thresholds.suggestion_wait_minutes` expire (the job run by the test, on backdated offers).

Staff steps and expiries wait until the bot has handled everything before them (customer and staff chats are
handled concurrently, so their relative order is otherwise not fixed); customer steps are not waited for. The
model (`World`) then knows what each step must lead to, and after each batch:

* no handler raised; every text is stored byte-identical with the decision the model expects (taken over when
  written during a takeover, else answered, offered, handed off or acknowledged, and what its buttons made of
  it: picked, refused, expired, rated once or changed once), mirrored (an open offer: not yet);
* each customer got exactly the bot messages the model expects: none for what they wrote while taken over;
* every press got the answer the model expects: forged, stale, repeated and other users' presses are refused
  or change nothing; picks are learnt as customer examples (until staff's own feedback on that decision
  replaces them), nothing else is;
* each customer's takeover is stored as the model has it.

Presses on a customer's own older buttons still work during a takeover: they are the customer's explicit
request, not an automatic answer (only new messages are quiet).

Longer than 300 lines: the player, the model it updates and the checks against it are one specification.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import bot.services as bot_services
from bot.handlers import conversation
from sandbox.emulator import FakeUser, as_api_message
from shop.texts import customer_text, staff_text
from storage.clock import to_timestamp
from storage.records import Decision, NotFoundError
from storage.store import Store
from tests.botkit import MEI, STAFF_CHAT, BotHarness, bot_settings
from tests.test_fuzz import FuzzRuntime, texts

EXAMPLES = int(os.environ.get("SHOPBOT_FUZZ_CONVERSATION_EXAMPLES", "24"))
BATCH = (50, 70)  # steps per example
MIN_STEPS = 1_000  # at the default number of examples
PEOPLE = [FakeUser(6000 + i, name, "en") for i, name in enumerate(["Kim", "Lu", "<i>Max</i>", "Noa"])]
STAFF_ANSWERS = ["Yes, we do!", "<b>10 yuan</b> & up", "明天见 🧋", "'; DROP TABLE faq;--", "See you at 10:00"]
LANGUAGES = ("en", "zh")

person = st.integers(0, len(PEOPLE) - 1)
newest = st.integers(0, 30)  # which of a chat's newest matching messages a step targets
step = st.one_of(
    st.tuples(st.just("text"), person, texts.map(lambda text: text or ".")),
    st.tuples(st.just("text"), person, texts.map(lambda text: text or ".")),
    st.tuples(st.just("press"), person, st.sampled_from(["honest", "honest", "double", "stale", "other"]),
              newest, st.integers(0, 5)),
    st.tuples(st.just("press"), person, st.sampled_from(["honest", "double", "stale"]), newest, st.integers(0, 5)),
    st.tuples(st.just("staff_reply"), person, newest, st.sampled_from(STAFF_ANSWERS)),
    st.tuples(st.just("staff_ok"), person, newest),
    st.tuples(st.just("resume_press"), person, newest, st.sampled_from(["staff", "staff", "customer"])),
    st.tuples(st.just("resume_command"), person, newest, st.booleans()),
    st.tuples(st.just("expire"), st.integers(0, 15)),  # 0: the waiting offers expire
)


@dataclass
class Buttons:
    """What the model knows of one decision with customer buttons (c1:<id>:…)."""

    state: str  # "offered", "picked", "refused", "unanswered" (offers), "answered" (an automatic answer)
    feedback: str | None = None
    changes: int = 0
    settled: bool = False  # staff confirmed or answered it: its rating buttons are stale
    picked: int | None = None  # the alternative the customer picked


@dataclass
class World:
    """The model: per customer, whether staff talk with them and the bot messages they must have got; per decision
    with customer buttons, its state; per press, the answers it may get."""

    taken: dict[int, bool] = field(default_factory=lambda: defaultdict(bool))
    owed: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # chat -> bot messages expected
    texts: list[tuple[int, int, str, bool]] = field(default_factory=list)  # (chat, message id, text, taken over)
    buttons: dict[int, Buttons] = field(default_factory=dict)
    seen_data: dict[tuple[int, int], list[str]] = field(default_factory=dict)  # (chat, message) -> c1: data ever shown
    answers: dict[str, tuple[set[str], bool]] = field(default_factory=dict)  # query -> (texts allowed, alert)
    presses: int = 0


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotHarness]:
    runtime = FuzzRuntime()
    settings_ = bot_settings(tmp_path_factory.mktemp("fuzz-conversation"),
                             thresholds={"suggest_confidence": 0.3}, conversation={"takeover_minutes": 30})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bot_services, "_rebuilt_index", lambda settings, serving: serving)  # as tests/test_fuzz.py
        with BotHarness(settings_, runtime_factory=lambda s: runtime, flood_limits=False) as harness:
            yield harness


def said(settings_, key: str) -> set[str]:
    """A customer text in either language (the presser's language follows what they last wrote)."""
    return {customer_text(settings_, language, key) for language in LANGUAGES}


def staff_message(emulator, message_id: int) -> dict:
    """A staff-chat message as it is now (emulator internals: `messages()` would copy thousands)."""
    with emulator._cond:
        return as_api_message(emulator._messages[(STAFF_CHAT, message_id)])


class Player:
    """Plays the steps on the emulator and keeps the model up to date."""

    def __init__(self, bot: BotHarness, world: World) -> None:
        self.bot, self.emulator, self.world = bot, bot.emulator, world
        self.settings = bot.settings
        self.query_ids = (f"fc-{n}" for n in itertools.count())
        self.store = Store(bot.settings.paths.database)
        self.steps = 0
        for user in PEOPLE:
            world.owed[user.id] = bot_count(self.emulator, user.id)

    # ------------------------------------------------------------------ waiting
    def sync(self) -> None:
        """Wait until the bot handled every step so far (replies, answers, stored texts, mirrors)."""
        world, emulator = self.world, self.emulator
        wait_until(lambda: emulator.pending_updates() == 0, "the bot fetched every update")
        wait_until(lambda: set(world.answers) <= answered(emulator), "every press answered")
        wait_until(lambda: all(bot_count(emulator, chat) >= owed for chat, owed in world.owed.items()),
                   f"bot messages owed: {dict(world.owed)}")
        stored = len(world.texts)
        wait_until(lambda: self.store.db.execute(
            f"select count(*) from messages where customer_id in ({','.join(str(u.id) for u in PEOPLE)})"
            " and text is not null").fetchone()[0] >= stored, "every text stored")
        wait_until(lambda: self.store.decisions.table.count_where(
            "staff_message_id is null and (suggestion is null or suggestion != 'offered')") == 0, "every decision mirrored")

    # ------------------------------------------------------------------ steps
    def play(self, action: tuple) -> None:
        self.steps += 1
        getattr(self, f"_{action[0]}")(*action[1:])

    def _text(self, who: int, text: str) -> None:
        user = PEOPLE[who]
        sent = self.emulator.send_text(user, text)
        taken = self.world.taken[user.id]
        self.world.texts.append((user.id, sent["message_id"], text, taken))
        if not taken:
            self.world.owed[user.id] += 1

    def _customer_buttons(self, user: FakeUser) -> list[dict]:
        """The bot's messages in the customer's chat that carry (or carried) customer buttons, newest first."""
        found = []
        for message in reversed(self.emulator.messages(user.id)):
            data = [b.get("callback_data", "") for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])
                    for b in row]
            key = (user.id, message["message_id"])
            if data:
                for item in data:
                    self._know(item)
                seen = self.world.seen_data.setdefault(key, [])
                seen += [item for item in data if item not in seen]
            if key in self.world.seen_data:
                found.append(message)
        return found

    def _know(self, data: str) -> None:
        decision_id, action = int(data.split(":")[1]), data.split(":")[2]
        if decision_id not in self.world.buttons:  # first sight: an open offer, or an automatic answer
            self.world.buttons[decision_id] = Buttons("offered" if action.startswith("p") or action == "no" else "answered")

    def _press(self, who: int, how: str, nth: int, which: int) -> None:
        user = PEOPLE[who]
        messages = self._customer_buttons(user)
        if how == "honest" or how == "double":
            messages = [m for m in messages if (m.get("reply_markup") or {}).get("inline_keyboard")]
        if not messages:
            self.steps -= 1
            return
        message = messages[nth % len(messages)]
        shown = [b["callback_data"] for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]
        if how in ("honest", "double"):
            data = shown[which % len(shown)]
            for _ in range(2 if how == "double" else 1):
                try:
                    query = self.emulator.press_button(user, message, data)["id"]
                except ValueError:  # gone meanwhile (the bot was quicker): the old client presses it all the same
                    query = self._raw_press(user, message, data)
                self.world.answers[query] = self._expect(user, data)
        else:
            ever = self.world.seen_data[(user.id, message["message_id"])]
            data = ever[which % len(ever)]
            presser = PEOPLE[(who + 1 + which % (len(PEOPLE) - 1)) % len(PEOPLE)] if how == "other" else user
            query = self._raw_press(presser, message, data)
            self.world.answers[query] = self._expect(presser, data, owner=user)
        self.world.presses += 1

    def _raw_press(self, user: FakeUser, message: dict, data: str) -> str:
        """A press as a modified client sends it (the button may be gone): emulator internals, as botkit.press_raw."""
        query_id = next(self.query_ids)
        with self.emulator._cond:
            self.emulator._open_queries.add(query_id)
        api = {key: message[key] for key in ("message_id", "date", "chat", "from", "text") if key in message}
        self.emulator.push_update({"callback_query": {"id": query_id, "from": user.to_api(), "message": api,
                                                      "chat_instance": "fc", "data": data}})
        return query_id

    def _expect(self, presser: FakeUser, data: str, owner: FakeUser | None = None) -> tuple[set[str], bool]:
        """The answer a press must get, and what it does to the model (presses in one chat are handled in order)."""
        s = self.settings
        if owner is not None and owner.id != presser.id:
            return said(s, "press_not_yours"), True
        _, number, action = data.split(":")
        model = self.world.buttons[int(number)]
        if action.startswith("p") or action == "no":
            if model.state != "offered":
                return said(s, "press_stale"), True
            model.state = "refused" if action == "no" else "picked"
            model.picked = None if action == "no" else int(action[1:])
            return {""}, False
        if model.state not in ("answered", "picked") or model.settled:
            return said(s, "press_stale"), True
        feedback = "up" if action == "up" else "down"
        if model.feedback == feedback:
            return said(s, "rate_same"), False
        if model.changes:
            return said(s, "rate_final"), True
        model.changes += model.feedback is not None
        model.feedback = feedback
        return said(s, f"rate_thanks_{feedback}"), False

    def _mirrors_of(self, user: FakeUser, where: str = "") -> list[Decision]:
        rows = self.store.db.execute(
            "select decisions.* from decisions join messages on messages.id = decisions.message_id"
            f" where messages.customer_id = ? and decisions.staff_message_id is not null {where}"
            " order by decisions.id desc", [user.id])
        names = [column[0] for column in rows.description]
        return [Decision.from_row(dict(zip(names, values))) for values in rows.fetchall()]

    def _staff_reply(self, who: int, nth: int, text: str) -> None:
        user = PEOPLE[who]
        self.sync()
        mirrors = self._mirrors_of(user)
        if not mirrors:
            self.steps -= 1
            return
        decision = mirrors[nth % len(mirrors)]
        answers = decision.kind == "question" and decision.status == "pending" and decision.action != "taken_over"
        if answers:
            self._settled(decision)  # staff answered it: the customer's rating is stale
        target = staff_message(self.emulator, decision.staff_message_id)
        before = len(self.emulator.requests)
        sent = self.emulator.reply_to(MEI, target, text)["message_id"]
        self.world.owed[user.id] += 1  # the answer, or the relayed message
        self.world.taken[user.id] = True
        if answers:  # the last thing it does: the mirror says who answered
            self.emulator.wait_for(lambda m, p: m == "editMessageText" and p.get("message_id") == target["message_id"],
                                   after=before)
        else:  # a relayed message: the bot says so, replying to it
            self.emulator.wait_for(lambda m, p: m == "sendMessage" and str(p.get("chat_id")) == str(STAFF_CHAT)
                                   and str(sent) in str(p.get("reply_parameters") or p.get("reply_to_message_id")),
                                   after=before)
        self.sync()

    def _staff_ok(self, who: int, nth: int) -> None:
        user = PEOPLE[who]
        self.sync()
        mirrors = self._mirrors_of(user, "and decisions.action = 'answered' and decisions.status = 'pending'")
        if not mirrors:
            self.steps -= 1
            return
        decision = mirrors[nth % len(mirrors)]
        message, data = staff_message(self.emulator, decision.staff_message_id), f"v1:{decision.id}:ok"
        try:
            query = self.emulator.press_button(MEI, message, data)["id"]
        except ValueError:  # its buttons are gone: an old client still sends it
            query = self._raw_press(MEI, message, data)
        self.world.answers[query] = ({staff_text(self.settings, "saved")}, False)
        self._settled(decision)
        self.sync()

    def _settled(self, decision: Decision) -> None:
        """Staff confirmed or answered an answered question: its 👍 / 👎 are stale from now on."""
        if decision.action == "answered":
            self.world.buttons.setdefault(decision.id, Buttons("answered")).settled = True

    def _resume_press(self, who: int, nth: int, presser: str) -> None:
        user = PEOPLE[who]
        self.sync()
        marked = self._mirrors_of(user, "and decisions.action = 'taken_over'")
        if not marked:
            self.steps -= 1
            return
        decision = marked[nth % len(marked)]
        message = staff_message(self.emulator, decision.staff_message_id)
        data = f"t1:r:{decision.id}"
        by = MEI if presser == "staff" else PEOPLE[(who + 1) % len(PEOPLE)]
        try:
            query = self.emulator.press_button(by, message, data)["id"]
        except ValueError:  # its ▶ is gone (pressed before): an old client still sends it
            query = self._raw_press(by, message, data)
        if by is not MEI:
            self.world.answers[query] = ({staff_text(self.settings, "not_allowed")}, True)
        elif self.world.taken[user.id]:
            self.world.answers[query] = ({staff_text(self.settings, "resumed", who=user.id)}, False)
            self.world.taken[user.id] = False
        else:
            self.world.answers[query] = ({staff_text(self.settings, "resume_not_taken")}, True)
        self.sync()

    def _resume_command(self, who: int, nth: int, replying: bool) -> None:
        user = PEOPLE[who]
        self.sync()
        mirrors = self._mirrors_of(user)
        target = staff_message(self.emulator, mirrors[nth % len(mirrors)].staff_message_id) if replying and mirrors \
            else None
        sent = self.emulator.send_command(MEI, "resume", "" if target is not None else str(user.id), chat_id=STAFF_CHAT,
                                          reply_to=target)
        expected = staff_text(self.settings, "resumed", who=user.id) if self.world.taken[user.id] else \
            staff_text(self.settings, "resume_not_taken")
        # The answer to /resume, not whatever the staff chat gets next (a 👎 alert paced by the group's flood limit
        # can arrive after the command on a busy machine).
        reply = self.emulator.wait_for_message(STAFF_CHAT, expected, after=sent["message_id"])
        assert reply["text"] == expected
        self.world.taken[user.id] = False
        self.sync()

    def _expire(self, roll: int) -> None:
        if roll:
            self.steps -= 1
            return
        self.sync()
        offered = self.store.decisions.offered_before(datetime.now(UTC) + timedelta(minutes=1))
        for decision in offered:
            message = self.store.messages.get(decision.message_id)
            self.store.decisions.table.update(decision.id, {"created_at": to_timestamp(
                datetime.now(UTC) - timedelta(minutes=self.settings.thresholds.suggestion_wait_minutes + 1))})
            model = self.world.buttons.setdefault(decision.id, Buttons("offered"))
            assert model.state == "offered", (decision.id, model)
            model.state = "unanswered"
            if not self.world.taken[message.customer_id]:  # told staff will answer, unless staff talk with them
                self.world.owed[message.customer_id] += 1
        self.bot.run(conversation.expire_offers(SimpleNamespace(services=self.bot.services, bot=self.bot.app.bot)))
        self.sync()


def wait_until(condition, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.01)


def bot_count(emulator, chat_id: int) -> int:
    """Bot messages in a chat (emulator internals: `messages()` copies every message)."""
    with emulator._cond:
        return sum(1 for (chat, _), stored in emulator._messages.items() if chat == chat_id and stored["from_bot"])


def answered(emulator) -> set[str]:
    with emulator._cond:
        return {p["callback_query_id"] for m, p in emulator._requests if m == "answerCallbackQuery"}


EXPECTED_OUTCOME = {  # the model's state -> (action, suggestion) stored with the decision
    "offered": ("suggested", "offered"), "picked": ("answered", "picked"), "refused": ("handoff", "refused"),
    "unanswered": ("handoff", "unanswered"), "answered": ("answered", None)}


def check(player: Player) -> None:
    """The batch's invariants (see the module docstring), once the bot has handled everything."""
    bot, world, emulator = player.bot, player.world, player.emulator
    player.sync()
    time.sleep(0.1)  # nothing more may come: a bot message to a taken-over customer would arrive now
    player.sync()
    assert bot.take_errors(timeout=0) == []
    assert {chat: bot_count(emulator, chat) for chat in world.owed} == dict(world.owed)
    calls = {p["callback_query_id"]: p for m, p in emulator.calls("answerCallbackQuery")}
    for query, (allowed, alert) in world.answers.items():
        got = calls[query]
        assert (got.get("text") or "") in allowed and bool(got.get("show_alert")) == alert, (query, got, allowed)

    store, now = player.store, datetime.now(UTC)
    with store.transaction():
        decisions: dict[int, Decision] = {}
        said_in: dict[int, str] = {}  # decision id -> the customer's text
        for chat, message_id, text, taken in world.texts:
            [row] = store.messages.table.rows_where("chat_id = ? and telegram_message_id = ?", [chat, message_id])
            assert row["text"].encode("utf-8", "surrogatepass") == text.encode("utf-8", "surrogatepass")
            [decision] = [Decision.from_row(r) for r in store.decisions.table.rows_where("message_id = ?", [row["id"]])]
            decisions[decision.id], said_in[decision.id] = decision, text
            assert (decision.action == "taken_over") == taken, (text, decision)
            if taken:
                assert "You are talking to them" in staff_message(emulator, decision.staff_message_id)["text"]
            elif decision.id not in world.buttons:  # never seen with buttons: a review, a handoff, or an open offer
                assert decision.action in ("acknowledged", "handoff", "suggested", "answered"), decision
                assert decision.customer_feedback is None and decision.suggestion in (None, "offered")
        for decision_id, model in world.buttons.items():
            decision = decisions[decision_id]
            assert (decision.action, decision.suggestion) == EXPECTED_OUTCOME[model.state], (decision, model)
            assert (decision.customer_feedback, decision.customer_feedback_changes) == (model.feedback, model.changes)
            if model.state == "picked":
                assert decision.label == decision.alternatives[model.picked][0]
        learnt = sorted((e.decision_id, e.label) for e in store.examples.all("faq") if e.source == "customer")
        assert learnt == sorted(  # staff feedback on the decision replaces it; a blank text teaches nothing
            (i, decisions[i].alternatives[m.picked][0]) for i, m in world.buttons.items()
            if m.state == "picked" and not m.settled and said_in[i].strip())
        assert {c.staff_id for c in store.corrections.all()} <= {MEI.id}
        for user in PEOPLE:
            try:
                until = store.customers.get(user.id).takeover_until
            except NotFoundError:  # never wrote yet
                until = None
            assert (until is not None and datetime.fromisoformat(until) > now) == world.taken[user.id], user


def test_customer_buttons_and_takeovers_fuzzed(bot: BotHarness) -> None:
    world = World()
    player = Player(bot, world)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, print_blob=True,
              phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
    @given(st.lists(step, min_size=BATCH[0], max_size=BATCH[1]))
    def batch(steps: list[tuple]) -> None:
        for action in steps:
            player.play(action)
        check(player)

    started = time.monotonic()
    try:
        batch()
    finally:
        player.store.close()
    elapsed = time.monotonic() - started
    kinds = {state: sum(1 for m in world.buttons.values() if m.state == state) for state in EXPECTED_OUTCOME}
    print(f"\nfuzz (conversation): {player.steps} steps, {world.presses} customer presses, {len(world.texts)} texts "
          f"({sum(t[3] for t in world.texts)} taken over), buttons {kinds}, in {elapsed:.0f}s")
    if EXAMPLES >= 24:
        assert player.steps >= MIN_STEPS
        assert kinds["picked"] and kinds["refused"] and kinds["unanswered"] and sum(t[3] for t in world.texts)
