"""The sandbox page in a real browser (headless Debian Chromium): a customer question answered wrongly,
staff ❌ + their own answer, the same question answered correctly afterwards, the owner's /report
with its chart; then a screenshot.

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe: NUL-separated JSON
on file descriptors 3 and 4), so no driver, websocket library or network port is needed. Skipped
where /usr/bin/chromium is absent; `.ci/run` installs it (`apt-get install chromium`).
Set SHOPBOT_SCREENSHOT=1 to also copy the screenshot to bench/results/sandbox.png.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.web import Sandbox, prepare
from storage.store import Store
from tests.botkit import bot_settings, load_real_runtime

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (/usr/bin/chromium missing): `apt-get install -y chromium` "
           "(.ci/run installs it)")

QUESTION = "Do you have oat milk?"
ANSWER = "Yes! Oat milk for any drink, 3 yuan extra."


class Browser:
    """Headless Chromium and one page, driven over the DevTools protocol on a pipe."""

    def __init__(self, profile: Path, width: int = 1400, height: int = 860) -> None:
        to_browser, self._ours_w = os.pipe()
        self._ours_r, from_browser = os.pipe()
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser)]
        os.close(to_browser)
        os.close(from_browser)

        def pipes_on_3_and_4() -> None:
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.process = subprocess.Popen(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
             f"--window-size={width},{height}", f"--user-data-dir={profile}", "--remote-debugging-pipe",
             "about:blank"],
            pass_fds=(3, 4), preexec_fn=pipes_on_3_and_4,  # noqa: PLW1509 - the pipe must be fds 3 and 4; only dup2s
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in high:
            os.close(fd)
        self._buffer = b""
        self._ids = iter(range(1, 1_000_000))
        page = next(t for t in self.call("Target.getTargets", session=False)["targetInfos"] if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True},
                                 session=False)["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method: str, params: dict | None = None, session: bool = True, timeout: float = 30) -> Any:
        """Send one command and return its result (events in between are skipped)."""
        message = {"id": next(self._ids), "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._ours_w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([self._ours_r], [], [], remaining)[0]:
                    raise TimeoutError(f"Chromium did not answer {method} in {timeout}s")
                chunk = os.read(self._ours_r, 1 << 20)
                if not chunk:
                    raise EOFError(f"Chromium closed the pipe (exit code {self.process.poll()})")
                self._buffer += chunk
            raw, _, self._buffer = self._buffer.partition(b"\0")
            reply = json.loads(raw)
            if reply.get("id") == message["id"]:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript failed: {result['exceptionDetails']}\n{expression}")
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float = 30, what: str = "") -> Any:
        """Poll an expression until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never showed {what or expression} in {timeout}s; staff pane: "
                                   f"{self.evaluate(PANE_TEXT % 'staff')!r}")
            time.sleep(0.1)

    def type_into(self, selector: str, text: str) -> None:
        """Focus an input and type text into it as keyboard input."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", {"text": text})

    def click(self, selector: str) -> None:
        """Click the element's centre with the mouse."""
        box = self.evaluate(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            e.scrollIntoView({{block: "center"}}); const r = e.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                   "clickCount": 1})

    def screenshot(self, path: Path) -> None:
        """Save a PNG of the page."""
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"]))

    def close(self) -> None:
        """Quit Chromium."""
        with contextlib.suppress(OSError, TimeoutError, EOFError, RuntimeError):
            self.call("Browser.close", session=False, timeout=5)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._ours_w)
        os.close(self._ours_r)


PANE_TEXT = "[...document.querySelectorAll('#%s .msg')].map(m => m.textContent).join(' | ')"


def bot_texts(pane: str) -> str:
    """JS: the texts of the bot's messages in a pane, as a JSON list."""
    return f"[...document.querySelectorAll('#{pane} .msg.bot .text')].map(e => e.textContent)"


def button_selector(pane: str, starts_with: str) -> str:
    """JS: mark the newest button in the pane whose label starts with `starts_with`; true if found."""
    return f"""(() => {{ const all = [...document.querySelectorAll('#{pane} .kb button')]
        .filter(b => b.textContent.startsWith({json.dumps(starts_with)}));
        document.querySelectorAll('[data-test-target]').forEach(e => e.removeAttribute('data-test-target'));
        if (!all.length) return false; all[all.length - 1].setAttribute('data-test-target', '1'); return true; }})()"""


@pytest.fixture
def sandbox(tmp_path: Path, tiny_base: Path) -> Iterator[Sandbox]:
    # answer_confidence 0: the tiny random model answers every question, (almost surely) wrongly
    settings = bot_settings(tmp_path / "shop", tiny_base, thresholds={"answer_confidence": 0.0})
    prepare(settings, train=False)
    with Sandbox(settings, load_real_runtime) as running:
        yield running


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    chromium = Browser(tmp_path / "profile")
    yield chromium
    chromium.close()


def ask(browser: Browser, question: str) -> str:
    """Type a question as the customer; return the bot's reply shown for it."""
    before = len(browser.evaluate(bot_texts("customer")))
    browser.type_into("#customer-input", question)
    browser.click("#customer-send")
    browser.wait(f"{bot_texts('customer')}.length > {before}", what="the bot's reply to the customer")
    return browser.evaluate(bot_texts("customer"))[-1]


def test_customer_question_staff_fix_and_the_same_question_answered_right(
        sandbox: Sandbox, browser: Browser, tmp_path: Path) -> None:
    browser.call("Page.navigate", {"url": sandbox.url})
    browser.wait("document.querySelectorAll('.empty').length === 3", what="three empty chats")

    wrong = ask(browser, QUESTION)
    assert wrong and ANSWER not in wrong
    assert browser.evaluate("document.querySelector('#customer .msg.user .text').textContent") == QUESTION

    browser.wait(button_selector("staff", "❌"), what="the mirror's ❌ button")
    assert QUESTION in browser.evaluate(PANE_TEXT % "staff")
    browser.click("[data-test-target]")
    browser.wait(button_selector("staff", "✍"), what="the correction menu's ✍ button")
    browser.click("[data-test-target]")
    browser.wait(f"{bot_texts('staff')}.some(t => t.startsWith('✍'))", what="the answer prompt")
    browser.type_into("#staff-input", ANSWER)  # answers the ForceReply prompt, as a Telegram client would
    browser.click("#staff-send")

    browser.wait(f"{bot_texts('customer')}.some(t => t.includes({json.dumps(ANSWER)}))",
                 what="the staff answer reaching the customer")
    browser.wait(f"{bot_texts('staff')}.some(t => t.includes('answered by Staff'))", what="the mirror's outcome")
    assert ask(browser, QUESTION) == ANSWER  # learnt: answered right at once

    with Store(sandbox.chat.settings.paths.database) as store:
        [correction] = store.corrections.all()
        assert (correction.kind, correction.answer_text) == ("answer", ANSWER)

    browser.click('#owner [data-send="/report"]')  # the owner's weekly report, with its chart
    browser.wait("(() => { const img = document.querySelector('#owner .msg.bot img');"
                 " return img && img.complete && img.naturalWidth > 100; })()", what="the report chart")
    assert "weekly report" in " ".join(browser.evaluate(bot_texts("owner")))
    shot = tmp_path / "sandbox.png"
    browser.screenshot(shot)
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
    if os.environ.get("SHOPBOT_SCREENSHOT"):
        target = REPO / "bench" / "results" / "sandbox.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
