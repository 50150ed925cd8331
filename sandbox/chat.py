"""`shopbot chat`: talk to the real bot in a terminal, without Telegram.

The same `build_application` runs against an in-process Bot API emulator on 127.0.0.1; each
line typed is sent as a Telegram update by one of three sandbox users (customer, staff, owner)
and whatever the bot sends, edits or pops up is printed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from sandbox.emulator import BotAPIEmulator, FakeUser
from settings import Settings

CUSTOMER = FakeUser(10_001, "You")
STAFF = FakeUser(20_001, "Staff", "en")
OWNER = FakeUser(30_001, "Owner", "en")
STAFF_CHAT = -1_000_001
_MIRROR_HEADS = ("❓", "🙋", "💬", "🚨")

HELP = """\
You are a customer: type a message (or /start, /help, /forget, /sticker, /photo, /voice).
  /lang zh|en|none        your Telegram language setting
  /staff press N [#M]     press button N on staff message #M (default: the latest with buttons)
  /staff reply [#M] TEXT  reply to staff message #M (default: the latest mirror) as staff
  /staff TEXT             write in the staff chat (e.g. the answer after ✍), /staff /cancel
  /owner /status          an owner command (/status /retrain /rollback /report)
  /?  this help      /quit  leave"""


def sandbox_settings(settings: Settings, emulator: BotAPIEmulator) -> Settings:
    """The configured settings on the emulator, plus the sandbox's staff, owner and staff chat."""
    roles = dataclasses.replace(settings.roles, owner_ids=(*settings.roles.owner_ids, OWNER.id),
                                staff_ids=(*settings.roles.staff_ids, STAFF.id), staff_chat_id=STAFF_CHAT)
    on_emulator = settings.with_bot_api(emulator.base_url, emulator.base_file_url, emulator.token)
    return dataclasses.replace(on_emulator, roles=roles)


class TerminalChat:
    """Runs the bot against an emulator in a background thread and plays the users from text lines."""

    def __init__(self, settings: Settings, out: TextIO | None = None,
                 runtime_factory: Callable[[Settings], Any] | None = None) -> None:
        out = out or sys.stdout
        self.emulator = BotAPIEmulator()
        self.emulator.add_chat(STAFF_CHAT)  # the bot is a member of the sandbox's staff group
        self.settings = settings
        self.out = out
        self.runtime_factory = runtime_factory
        self.customer = CUSTOMER
        self._shown: dict[tuple[int, int], tuple[str, Any]] = {}
        self._answers_seen = 0
        self._print_lock = threading.Lock()
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the emulator and the bot; return once it is polling."""
        from bot.app import build_application, running

        self.emulator.start()
        settings = sandbox_settings(self.settings, self.emulator)
        app = build_application(settings, runtime_factory=self.runtime_factory)

        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            try:
                async with running(app):
                    self._ready.set()
                    await self._stop.wait()
            except BaseException as error:  # noqa: BLE001 - reported by start()
                self._error = error
                self._ready.set()

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), name="shopbot-chat", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self.emulator.stop()
            raise self._error

    def stop(self) -> None:
        """Stop the bot and the emulator."""
        if self._error is None and self._ready.is_set():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(30)
        self.emulator.stop()

    # ------------------------------------------------------------------ the loop
    def run(self, lines: Iterable[str], prompt: Callable[[], None] | None = None) -> None:
        """Handle each line, printing the bot's output after it; stops at /quit or the end."""
        self._print(HELP)
        if prompt:
            prompt()
        for raw in lines:
            line = raw.strip()
            if line in ("/quit", "/exit"):
                break
            if line:
                try:
                    self.handle(line)
                except ValueError as error:  # a bad /staff command: say why and go on
                    self._print(f"  ! {error}")
                self.settle()
                self.show_new()
            if prompt:
                prompt()

    def handle(self, line: str) -> None:
        """Send one line as the right user."""
        emulator = self.emulator
        if line == "/?":
            self._print(HELP)
        elif line.startswith("/lang"):
            code = [*line.split(), "none"][1]
            self.customer = dataclasses.replace(self.customer, language_code=None if code == "none" else code)
            self._print(f"  (your Telegram language: {self.customer.language_code or 'not set'})")
        elif line in ("/sticker", "/photo", "/voice"):
            getattr(emulator, f"send_{line[1:]}")(self.customer)
        elif line.startswith("/staff"):
            self._staff(line[len("/staff"):].strip())
        elif line.startswith("/owner"):
            command, _, args = line[len("/owner"):].strip().lstrip("/").partition(" ")
            emulator.send_command(OWNER, command or "status", args.strip())
        elif line.startswith("/"):
            command, _, args = line[1:].partition(" ")
            emulator.send_command(self.customer, command, args.strip())
        else:
            emulator.send_text(self.customer, line)

    def _staff(self, rest: str) -> None:
        emulator = self.emulator
        words = rest.split()
        if words[:1] == ["press"]:
            if len(words) < 2 or not words[1].isdigit():
                raise ValueError("usage: /staff press N [#M]")
            message = self._staff_message(words[2] if len(words) > 2 else None, lambda m: bool(_buttons(m)))
            options = _buttons(message)
            number = int(words[1])
            if not 1 <= number <= len(options):
                raise ValueError(f"message #{message['message_id']} has buttons 1..{len(options)}")
            emulator.press_button(STAFF, message, options[number - 1][1])
        elif words[:1] == ["reply"]:
            target = words[1] if len(words) > 1 and words[1].startswith("#") else None
            text = rest.split(None, 2 if target else 1)[-1] if len(words) > (2 if target else 1) else ""
            if not text:
                raise ValueError("usage: /staff reply [#M] TEXT")
            message = self._staff_message(target, lambda m: (m.get("text") or "").startswith(_MIRROR_HEADS))
            emulator.reply_to(STAFF, message, text)
        elif rest.startswith("/"):
            command, _, args = rest[1:].partition(" ")
            emulator.send_command(STAFF, command, args.strip(), chat_id=STAFF_CHAT)
        elif rest:
            prompts = [m for m in emulator.messages(STAFF_CHAT) if (m.get("reply_markup") or {}).get("force_reply")]
            if prompts:  # a Telegram client answers a ForceReply prompt by replying to it
                emulator.reply_to(STAFF, prompts[-1], rest)
            else:
                emulator.send_text(STAFF, rest, chat_id=STAFF_CHAT)
        else:
            raise ValueError("usage: /staff press N | /staff reply TEXT | /staff TEXT")

    def _staff_message(self, ref: str | None, wanted: Callable[[dict], bool]) -> dict:
        messages = self.emulator.messages(STAFF_CHAT)
        if ref is not None:
            number = ref.lstrip("#")
            found = [m for m in messages if str(m["message_id"]) == number]
            if not found:
                raise ValueError(f"no staff-chat message {ref}")
            return found[0]
        candidates = [m for m in messages if wanted(m)]
        if not candidates:
            raise ValueError("no such staff-chat message yet")
        return candidates[-1]

    # ------------------------------------------------------------------ output
    def settle(self, quiet_s: float = 0.4, timeout_s: float = 60.0) -> None:
        """Wait until the bot took every update and has been quiet for `quiet_s`."""
        deadline = time.monotonic() + timeout_s
        last_count, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            count = sum(1 for method, _ in self.emulator.requests if method != "getUpdates")
            if count != last_count or self.emulator.pending_updates():
                last_count, last_change = count, time.monotonic()
            elif time.monotonic() - last_change >= quiet_s:
                return
            time.sleep(0.05)

    def show_new(self) -> None:
        """Print bot messages and edits not shown yet, and pop-up answers to button presses."""
        for message in self.emulator.messages():
            key = (message["chat_id"], message["message_id"])
            text = message.get("text") or message.get("caption") or ""
            state = (text, message.get("reply_markup"))
            if self._shown.get(key) == state:
                continue
            where = "staff chat" if message["chat_id"] == STAFF_CHAT else (
                "you" if message["chat_id"] == self.customer.id else f"chat {message['chat_id']}")
            verb = "✎ edited" if key in self._shown else "→"
            self._shown[key] = state
            self._print(f"bot {verb} {where} #{message['message_id']}: {text}")
            options = _buttons(message)
            if options:
                self._print("    " + "   ".join(f"[{n}] {label}" for n, (label, _) in enumerate(options, 1)))
        answers = self.emulator.calls("answerCallbackQuery")
        for _, params in answers[self._answers_seen:]:
            if params.get("text"):
                self._print(f"bot ⓘ pop-up: {params['text']}")
        self._answers_seen = len(answers)

    def _print(self, text: str) -> None:
        with self._print_lock:
            print(text, file=self.out, flush=True)


def _buttons(message: dict) -> list[tuple[str, str]]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [(button["text"], button["callback_data"]) for row in rows for button in row]


def run_chat(settings: Settings, lines: Iterable[str] | None = None, out: TextIO | None = None,
             runtime_factory: Callable[[Settings], Any] | None = None) -> int:
    """Run a terminal chat session (stdin lines unless `lines`); returns an exit code."""
    out = out or sys.stdout
    chat = TerminalChat(settings, out, runtime_factory)
    print("Starting the bot (loading the model)…", file=out, flush=True)
    try:
        chat.start()
    except Exception as error:  # noqa: BLE001 - e.g. the base model cannot be built: say why, no traceback
        print(f"shopbot chat: the bot could not start: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    interactive = lines is None and sys.stdin.isatty()

    def prompt() -> None:
        if interactive:
            print("> ", end="", file=out, flush=True)

    try:
        chat.run(sys.stdin if lines is None else lines, prompt)
    except KeyboardInterrupt:
        pass
    finally:
        chat.stop()
    return 0
