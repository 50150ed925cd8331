"""`shopbot serve` in webhook mode: one endpoint on 127.0.0.1, each shop at its own path with its own secret.

The emulators (one per shop) post their updates to the URLs the shops set with setWebhook; posts with
another shop's secret, without one, or for a shop not hosted are refused and change nothing.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.hosting import HostOptions, SharedBases
from sandbox.emulator import FakeUser
from storage.store import Store
from tests.hostkit import HostHarness, Shop, exact_memory_runtimes, make_shop
from tests.test_webhook import LOCAL, free_port

DANA = FakeUser(1201, "Dana", "en")
HANDOFF = "passed it to our staff"


@pytest.fixture
def hooked(tmp_path: Path, tiny_base: Path) -> Iterator[tuple[HostHarness, list[Shop], str]]:
    shops = [make_shop(tmp_path, "north", 21, tiny_base), make_shop(tmp_path, "south", 22, tiny_base)]
    base_url = f"http://127.0.0.1:{free_port()}/hooks"
    port = int(base_url.split(":")[2].split("/")[0])
    hosting = (f'[hosting]\nmode = "webhook"\nwebhook_url = "{base_url}"\nwebhook_listen = "127.0.0.1"\n'
               f"webhook_port = {port}\nwatch_seconds = 0.2\n")
    harness = HostHarness(tmp_path, shops, HostOptions(runtime_factory=exact_memory_runtimes(SharedBases())),
                          hosting_toml=hosting).start("north", "south")
    try:
        yield harness, shops, base_url
    finally:
        harness.stop()
        for shop in shops:
            shop.emulator.stop()


def _post(url: str, update: dict, secret: str | None) -> int:
    request = urllib.request.Request(url, data=json.dumps(update).encode(), headers={
        "Content-Type": "application/json"} | ({"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}))
    try:
        with LOCAL.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


def test_each_shop_gets_its_updates_on_its_own_path(hooked) -> None:
    _, (north, south), base_url = hooked
    [(_, north_hook)] = north.emulator.calls("setWebhook")
    [(_, south_hook)] = south.emulator.calls("setWebhook")
    assert (north_hook["url"], south_hook["url"]) == (f"{base_url}/north", f"{base_url}/south")
    assert north_hook["secret_token"] != south_hook["secret_token"] and len(north_hook["secret_token"]) >= 32

    reply, mirror = north.ask(DANA, "Do you sell gift cards?")
    assert HANDOFF in reply["text"] and "gift cards" in mirror["text"]
    reply, mirror = south.ask(DANA, "Is there parking nearby?")
    assert HANDOFF in reply["text"] and "parking" in mirror["text"]
    assert north.emulator.calls("getUpdates") == [] and south.emulator.calls("getUpdates") == []
    assert all(d["ok"] and d["url"] == f"{base_url}/north" for d in north.emulator.deliveries())
    with Store(south.database) as store:
        assert store.messages.table.count_where("text like ?", ["%gift cards%"]) == 0


@pytest.mark.parametrize("secret_of", ["other shop", "none", "wrong"])
def test_a_post_without_the_shops_own_secret_is_refused(hooked, secret_of: str) -> None:
    _, (north, south), base_url = hooked
    secrets = {"other shop": south.emulator.calls("setWebhook")[0][1]["secret_token"], "none": None, "wrong": "x" * 40}
    forged = f"forged for north ({secret_of})"
    update = {"update_id": 777_000, "message": {"message_id": 99_999, "date": 1, "from": DANA.to_api(), "text": forged,
                                                "chat": {"id": DANA.id, "type": "private", "first_name": "Dana"}}}
    assert _post(f"{base_url}/north", update, secrets[secret_of]) == 403
    assert _post(f"{base_url}/nowhere", update, secrets["other shop"]) == 404
    assert HANDOFF in north.say(DANA, "A real question?")["text"]
    for shop in (north, south):
        with Store(shop.database) as store:
            assert store.messages.table.count_where("text = ?", [forged]) == 0


def test_a_removed_shop_deletes_its_webhook_and_its_path_is_gone(hooked) -> None:
    harness, (north, south), base_url = hooked
    secret = north.emulator.calls("setWebhook")[0][1]["secret_token"]
    shutil.rmtree(north.folder)
    harness.wait_state("north", "absent", timeout=30)
    north.emulator.wait_for(lambda method, _: method == "deleteWebhook", timeout=10)
    assert _post(f"{base_url}/north", {"update_id": 1}, secret) == 404
    assert HANDOFF in south.say(DANA, "Still open?")["text"]
