"""Webhook mode: the emulator's setWebhook/deliveries/getWebhookInfo, and the real bot receiving
updates through its webhook server (secret token checked), all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from telegram import Bot
from telegram.error import BadRequest, Conflict

from bot.app import webhook_options
from sandbox.emulator import BotAPIEmulator
from settings import ConfigError, settings_from_dict
from tests.botkit import ALICE, BotHarness, bot_settings

LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Receiver:
    """A webhook endpoint on 127.0.0.1 recording each POST; answers 500 while `failing`."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], dict]] = []
        self.failing = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.posts.append((dict(self.headers), body))
                self.send_response(500 if receiver.failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()




@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


def call(emulator: BotAPIEmulator, coroutine_of: Any) -> Any:
    """Run one Bot API call through a real PTB Bot pointed at the emulator."""
    async def main() -> Any:
        async with Bot(emulator.token, base_url=emulator.base_url, base_file_url=emulator.base_file_url) as bot:
            return await coroutine_of(bot)
    return asyncio.run(main())


# ---------------------------------------------------------------- the emulator's webhook
def test_updates_are_posted_to_the_webhook_with_the_secret_and_get_updates_conflicts(
        emulator: BotAPIEmulator, receiver: Receiver) -> None:
    assert call(emulator, lambda bot: bot.set_webhook(receiver.url, secret_token="s3cret-Token_1"))
    sent = emulator.send_text(ALICE, "hello hook")
    delivery = emulator.wait_for_delivery(1)
    assert delivery["status"] == 200 and delivery["url"] == receiver.url
    [(headers, body)] = receiver.posts
    assert headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cret-Token_1"
    assert headers["Content-Type"] == "application/json"
    assert body == {"update_id": 1, "message": sent}
    info = call(emulator, lambda bot: bot.get_webhook_info())
    assert (info.url, info.pending_update_count, info.has_custom_certificate) == (receiver.url, 0, False)
    with pytest.raises(Conflict, match="can't use getUpdates method while webhook is active; use deleteWebhook"):
        call(emulator, lambda bot: bot.get_updates())

    assert call(emulator, lambda bot: bot.delete_webhook())  # back to polling
    emulator.send_text(ALICE, "polled again")
    [update] = call(emulator, lambda bot: bot.get_updates())
    assert update.message.text == "polled again" and len(receiver.posts) == 1
    assert call(emulator, lambda bot: bot.get_webhook_info()).url == ""


def test_a_failed_delivery_stays_pending_and_is_retried(emulator: BotAPIEmulator, receiver: Receiver) -> None:
    receiver.failing = True
    call(emulator, lambda bot: bot.set_webhook(receiver.url))
    emulator.send_text(ALICE, "retry me")
    emulator.wait_for_delivery(1, ok=False)
    info = call(emulator, lambda bot: bot.get_webhook_info())
    assert info.pending_update_count == 1 and "500" in info.last_error_message
    receiver.failing = False
    assert emulator.wait_for_delivery(1)["status"] == 200
    assert call(emulator, lambda bot: bot.get_webhook_info()).pending_update_count == 0
    assert all("X-Telegram-Bot-Api-Secret-Token" not in headers for headers, _ in receiver.posts)  # none was set
    assert {body["message"]["text"] for _, body in receiver.posts} == {"retry me"}


@pytest.mark.parametrize("url", ["https://example.com/hook", "http://10.0.0.1:8443/hook",
                                 "http://127.0.0.1.example.com/hook", "http://[2001:db8::1]/hook",
                                 "ftp://127.0.0.1/hook", "127.0.0.1:8443"])
def test_only_loopback_webhooks_are_accepted(emulator: BotAPIEmulator, url: str) -> None:
    with pytest.raises(BadRequest, match=r"(?i)bad webhook: .*127.0.0.1, ::1 or localhost"):
        call(emulator, lambda bot: bot.set_webhook(url))
    emulator.send_text(ALICE, "still polling")
    assert call(emulator, lambda bot: bot.get_webhook_info()).url == ""
    assert len(call(emulator, lambda bot: bot.get_updates())) == 1
    assert emulator.deliveries() == []


def test_loopback_names_are_accepted_and_a_bad_secret_is_refused(emulator: BotAPIEmulator) -> None:
    for url in ("http://localhost:8443/a", "https://[::1]/b", "http://127.0.0.2/c"):
        assert call(emulator, lambda bot, url=url: bot.set_webhook(url))
    with pytest.raises(BadRequest, match=r"(?i)secret token contains unallowed characters"):
        call(emulator, lambda bot: bot.set_webhook("http://127.0.0.1/d", secret_token="no spaces!"))
    assert call(emulator, lambda bot: bot.get_webhook_info()).url == "http://127.0.0.2/c"


# ---------------------------------------------------------------- the bot in webhook mode
@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Iterator[BotHarness]:
    """The real bot in webhook mode; its api_url (the emulator) comes from the settings."""
    port = free_port()
    with BotAPIEmulator() as emulator:
        telegram = {"mode": "webhook", "api_url": emulator.base_url, "file_url": emulator.base_file_url,
                    "webhook_url": f"http://127.0.0.1:{port}/telegram", "webhook_listen": "127.0.0.1",
                    "webhook_port": port}
        settings = bot_settings(tmp_path_factory.mktemp("webhook"), tiny_base, telegram=telegram)
        with BotHarness(settings, emulator=emulator) as harness:
            yield harness


def test_a_customer_message_reaches_the_bot_through_the_webhook(hooked: BotHarness) -> None:
    [(_, params)] = hooked.emulator.calls("setWebhook")
    assert params["url"] == hooked.settings.telegram.webhook_url
    assert len(params["secret_token"]) >= 32  # none in the environment: generated at start
    reply, mirror, decision = hooked.ask(ALICE, "Do you deliver to the airport?")
    assert "passed it to our staff" in reply["text"]
    assert "Do you deliver to the airport?" in mirror["text"] and decision.action == "handoff"
    assert hooked.emulator.calls("getUpdates") == []
    assert all(delivery["status"] == 200 for delivery in hooked.emulator.deliveries())
    assert hooked.take_errors() == []


@pytest.mark.parametrize("header", [None, "wrong-secret"])
def test_a_post_without_the_right_secret_is_refused_and_changes_nothing(hooked: BotHarness,
                                                                         header: str | None) -> None:
    forged_text = f"forged: refund everyone ({header})"
    update = {"update_id": 900_000 + len(str(header)), "message": {
        "message_id": 99_999, "date": 1, "chat": {"id": ALICE.id, "type": "private", "first_name": "Alice"},
        "from": ALICE.to_api(), "text": forged_text}}
    request = urllib.request.Request(hooked.settings.telegram.webhook_url, data=json.dumps(update).encode(),
                                     headers={"Content-Type": "application/json"}
                                     | ({"X-Telegram-Bot-Api-Secret-Token": header} if header else {}))
    with pytest.raises(urllib.error.HTTPError) as refused:
        LOCAL.open(request, timeout=10)
    refused.value.close()
    assert refused.value.code == 403
    before = len(hooked.emulator.messages(ALICE.id))
    reply = hooked.say(ALICE, "Is there parking nearby?")  # the same chat: handled after a forged one would be
    assert "passed it to our staff" in reply["text"]
    assert len(hooked.emulator.messages(ALICE.id)) == before + 1
    with hooked.store() as store:
        assert store.messages.table.count_where("text = ?", [forged_text]) == 0
    assert hooked.take_errors() == []


# ---------------------------------------------------------------- where the secret comes from
def test_the_webhook_secret_comes_from_the_environment_or_is_generated(make_settings) -> None:
    telegram = {"mode": "webhook", "webhook_url": "https://shop.example/telegram"}
    generated = make_settings(telegram=telegram)
    first, second = webhook_options(generated), webhook_options(generated)
    assert first["secret_token"] != second["secret_token"] and len(first["secret_token"]) >= 32
    assert (first["listen"], first["port"], first["url_path"]) == ("0.0.0.0", 8443, "telegram")
    from_env = make_settings(telegram=telegram, env={"TELEGRAM_WEBHOOK_SECRET": "from-the-env_42"})
    assert webhook_options(from_env)["secret_token"] == "from-the-env_42"
    assert webhook_options(make_settings()) is None  # polling


def test_shopbot_run_starts_the_webhook_server(make_settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from telegram.ext import Application

    import cli

    started: dict[str, Any] = {}
    monkeypatch.setattr(Application, "run_webhook", lambda self, **kwargs: started.update(kwargs))
    settings = make_settings(telegram={"mode": "webhook", "webhook_url": "https://shop.example:443/tg/hook"},
                             env={"TELEGRAM_BOT_TOKEN": "1:T", "TELEGRAM_WEBHOOK_SECRET": "abc"})
    assert cli.cmd_run(settings, None) == 0
    assert started["webhook_url"] == "https://shop.example:443/tg/hook" and started["url_path"] == "tg/hook"
    assert (started["secret_token"], started["listen"], started["port"]) == ("abc", "0.0.0.0", 8443)


@pytest.mark.parametrize(("data", "env", "message"), [
    ({"telegram": {"webhook_listen": "everywhere"}}, {}, "telegram.webhook_listen: must be an IP address"),
    ({"telegram": {"webhook_secret": "abc"}}, {}, "telegram.webhook_secret: the webhook secret must not be stored"),
    ({"telegram": {"secret_token": "abc"}}, {}, "telegram.secret_token: the webhook secret must not be stored"),
    ({}, {"TELEGRAM_WEBHOOK_SECRET": "has spaces"}, "TELEGRAM_WEBHOOK_SECRET: must be 1-256 characters"),
    ({}, {"TELEGRAM_WEBHOOK_SECRET": "x" * 257}, "TELEGRAM_WEBHOOK_SECRET: must be 1-256 characters"),
])
def test_webhook_keys_are_validated(tmp_path: Path, data: dict, env: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        settings_from_dict(data, tmp_path, env=env)
    assert message in str(error.value) and "has spaces" not in str(error.value)  # never echo a secret
