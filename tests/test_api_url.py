"""[telegram] api_url / file_url: a self-hosted Bot API server, validated and used by the bot."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.app import build_application
from sandbox.emulator import BotAPIEmulator
from settings import ConfigError, settings_from_dict


def test_defaults_are_telegrams_servers(make_settings) -> None:
    telegram = make_settings().telegram
    assert telegram.api_url == "https://api.telegram.org/bot"
    assert telegram.file_url == "https://api.telegram.org/file/bot"


@pytest.mark.parametrize("key", ["api_url", "file_url"])
@pytest.mark.parametrize("value", ["api.telegram.org/bot", "ftp://bots.example/bot", "http:///bot", "",
                                   "https://bots.example/bot?x=1"])
def test_a_bad_url_is_refused_naming_the_key(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"telegram\.{key}: must be an http:// or https:// URL"):
        settings_from_dict({"telegram": {key: value}}, tmp_path, env={})


def test_a_self_hosted_server_may_use_an_http_webhook(make_settings) -> None:
    hook = {"mode": "webhook", "webhook_url": "http://10.0.0.5:8443/hook"}
    with pytest.raises(ConfigError, match=r"telegram\.webhook_url: must be an https:// URL .*self-hosted"):
        make_settings(telegram=hook)
    settings = make_settings(telegram=hook | {"api_url": "http://10.0.0.2:8081/bot"})
    assert settings.telegram.webhook_url == "http://10.0.0.5:8443/hook"


def test_the_bot_talks_to_the_configured_api_url(tmp_path: Path) -> None:
    with BotAPIEmulator() as emulator:
        settings = settings_from_dict({"telegram": {"api_url": emulator.base_url, "file_url": emulator.base_file_url}},
                                      tmp_path, env={"TELEGRAM_BOT_TOKEN": emulator.token})
        application = build_application(settings)

        async def main() -> str:
            async with application:
                return (await application.bot.get_me()).username

        assert asyncio.run(main()) == emulator.bot_username
        assert [method for method, _ in emulator.requests] == ["getMe", "getMe"]
        assert application.bot.base_url == emulator.base_url + emulator.token
        assert application.bot.base_file_url == emulator.base_file_url + emulator.token
