"""Many shops in one process (`shopbot serve --shops DIR`, polling): one shared base, and nothing else shared.

Two (or three) shops, each with its own emulator (token), staff chat, owner, database and adapters, run in
one ShopHost; the tests check that answers, corrections, reports, /status and swaps stay in their shop, that
a broken or flood-limited shop does not stop the other, that shops come and go while the others answer, and
that retrains of different shops take turns.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.hosting import HostOptions, SharedBases, base_key
from sandbox.emulator import FakeUser
from settings import load_hosting, load_shop_settings
from storage.store import Store
from tests.botkit import button_data
from tests.hostkit import HostHarness, Shop, exact_memory_runtimes, make_shop

CAROL = FakeUser(1101, "Carol", "en")  # a customer of both shops
HANDOFF = "passed it to our staff"


@pytest.fixture
def shops(tmp_path: Path, tiny_base: Path) -> Iterator[list[Shop]]:
    made = [make_shop(tmp_path, "alpha", 11, tiny_base), make_shop(tmp_path, "beta", 12, tiny_base)]
    yield made
    for shop in made:
        shop.emulator.stop()


@pytest.fixture
def host(tmp_path: Path, shops: list[Shop]) -> Iterator[HostHarness]:
    bases = SharedBases()
    (tmp_path / "tokens.env").write_text("# tokens of shops added later\n")
    (tmp_path / "tokens.env").chmod(0o600)
    harness = HostHarness(tmp_path, shops, HostOptions(runtime_factory=exact_memory_runtimes(bases), poll_timeout_s=1),
                          hosting_toml='[hosting]\nwatch_seconds = 0.2\nretry_seconds = 0.5\nenv_file = "tokens.env"\n')
    harness.bases = bases  # type: ignore[attr-defined]
    harness.start("alpha", "beta")
    yield harness
    harness.stop()


def test_two_shops_share_one_base_and_answer_each_in_their_own_chats(host: HostHarness, shops: list[Shop]) -> None:
    alpha, beta = shops
    a, b = host.services("alpha"), host.services("beta")
    assert a.runtime.serving.encoder is b.runtime.serving.encoder  # one trunk in memory
    assert host.bases.loads == 1 and len(host.bases) == 1  # type: ignore[attr-defined]
    # Neither shop has an adapter yet: both serve the base's own FAQ top (immutable, shared like the trunk on the
    # ONNX runtime); each has its own FAQ index of its own entries, and a promoted adapter would be its own top.
    assert a.runtime.serving.index is not b.runtime.serving.index
    assert a.store is not b.store and a.runtime.memory is not b.runtime.memory

    reply, mirror = alpha.ask(CAROL, "Do you sell gift cards?")
    assert HANDOFF in reply["text"] and "Do you sell gift cards?" in mirror["text"]
    reply, mirror = beta.ask(CAROL, "Is there parking nearby?")
    assert HANDOFF in reply["text"] and "Is there parking nearby?" in mirror["text"]
    assert not any("parking" in m["text"] for m in alpha.emulator.messages(alpha.staff_chat))
    assert not any("gift cards" in m["text"] for m in beta.emulator.messages(beta.staff_chat))
    for shop, mine, theirs in ((alpha, "gift cards", "parking"), (beta, "parking", "gift cards")):
        with Store(shop.database) as store:
            texts = [row["text"] for row in store.messages.table.rows]
            assert any(mine in text for text in texts) and not any(theirs in text for text in texts)


def test_a_correction_in_one_shop_changes_only_that_shop(host: HostHarness, shops: list[Shop]) -> None:
    alpha, beta = shops
    text = "Is the new mango one any good?"
    reply, mirror = alpha.ask(CAROL, text)
    assert HANDOFF in reply["text"]
    alpha.emulator.press_button(alpha.staff, mirror, button_data(mirror, "😞 review"))
    alpha.emulator.wait_for_message(CAROL.id, "We're really sorry", after=reply["message_id"],
                                      timeout=30)  # the review reply (a relabel, then the reply: slow on a busy CI)
    _wait(lambda: alpha.emulator.messages(alpha.staff_chat)[-1]["text"].endswith("the customer got the review reply"))
    assert alpha.say(CAROL, text)["text"].startswith("We're really sorry")  # alpha learnt it at once
    assert HANDOFF in beta.say(CAROL, text)["text"]  # beta did not
    with Store(beta.database) as store:
        assert store.corrections.all() == []
    with Store(alpha.database) as store:
        assert [c.new_label for c in store.corrections.all()] == ["negative"]


def test_status_and_reports_show_only_the_owners_own_shop(host: HostHarness, shops: list[Shop]) -> None:
    alpha, beta = shops
    alpha.ask(CAROL, "Do you have oat milk?")
    alpha.ask(CAROL, "Can I book a table?")
    status = alpha.command(alpha.owner, "status")["text"]
    assert "Shop alpha" in status and "beta" not in status
    assert "2 messages decided" in status and "0 errors" in status and "0 restarts" in status
    assert "0 messages decided" in beta.command(beta.owner, "status")["text"]
    # alpha's owner is nobody at beta (and is refused there), whatever chat they write from
    assert beta.command(alpha.owner, "status")["text"] == "Sorry, only the shop owner can use this command."
    assert beta.command(alpha.owner, "report")["text"] == "Sorry, only the shop owner can use this command."
    report = alpha.command(alpha.owner, "report", timeout=60)["text"]
    assert "Shop alpha" in report and "Shop beta" not in report
    assert "Questions: 2" in report
    assert "Questions: 0" in beta.command(beta.owner, "report", timeout=60)["text"]


def test_a_swap_in_one_shop_leaves_the_other_serving_as_before(host: HostHarness, shops: list[Shop],
                                                                 tiny_base: Path) -> None:
    from training.registry import AdapterRegistry

    alpha, beta = shops
    b_serving = host.services("beta").runtime.serving
    beta_before = beta.say(CAROL, "Do you deliver?")["text"]
    settings = host.services("alpha").settings
    with Store(alpha.database) as store:
        registry = AdapterRegistry(settings.paths.adapters, store)
        versions = _publish_random_adapters(registry, settings, str(tiny_base))
        for version in versions.values():
            registry.promote(version, ["test: a swap in alpha"])
    served = host.run(host.services("alpha").reload_adapters())
    assert "sentiment=" in served and "faq=" in served
    assert host.services("beta").runtime.serving is b_serving  # untouched
    assert host.services("beta").runtime.serving.version == "base"
    assert beta.say(CAROL, "Do you deliver?")["text"] == beta_before
    assert served in alpha.command(alpha.owner, "status")["text"]
    assert "Serving: base" in beta.command(beta.owner, "status")["text"]


def _publish_random_adapters(registry, settings, base: str) -> dict[str, str]:
    """One sentiment and one FAQ adapter with random LoRA weights (untrained, but real adapters, with their ONNX
    graphs exported as the trainer does)."""
    import torch

    from training.args import TrainArgs
    from training.encoder import load_encoder
    from training.export_onnx import export_adapter
    from training.faq import new_faq_model, save_faq
    from training.sentiment import new_sentiment_model, save_sentiment
    from vocabulary import SENTIMENT_LABELS

    encoder = load_encoder(settings)  # the training side's (torch) encoder: the bot's base may be ONNX
    args, versions = TrainArgs(seed=1, progress=False), {}
    for task, model in (("sentiment", new_sentiment_model(encoder, args)), ("faq", new_faq_model(encoder, args))):
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(parameter, 0.0, 0.2)
        staging = registry.staging_dir(task)
        save_sentiment(model, staging, SENTIMENT_LABELS) if task == "sentiment" else save_faq(model, staging)
        export_adapter(task, staging, encoder)
        versions[task] = registry.publish(task, staging, {"metrics": {"accuracy": 0.0}, "base_model": base,
                                                          "version": f"{task}-hosting-test"}).version
    return versions


def test_a_shop_added_or_removed_is_picked_up_while_the_other_keeps_answering(
        host: HostHarness, shops: list[Shop], tmp_path: Path, tiny_base: Path) -> None:
    alpha, beta = shops
    gamma = make_shop(tmp_path / "incoming", "gamma", 13, tiny_base)
    try:
        _add_token(tmp_path, gamma)  # the process started without it: the env file brings it
        alpha_services = host.services("alpha")
        shutil.move(str(gamma.folder), str(tmp_path / "gamma"))  # appears whole, as a deploy would make it
        gamma.folder = tmp_path / "gamma"
        host.wait_state("gamma", "running")
        assert HANDOFF in gamma.say(CAROL, "Do you sell gift cards?")["text"]
        assert host.services("gamma").runtime.serving.encoder is alpha_services.runtime.serving.encoder
        assert HANDOFF in alpha.say(CAROL, "Still there?")["text"]

        shutil.rmtree(beta.folder)
        host.wait_state("beta", "absent", timeout=30)
        assert host.services("alpha") is alpha_services  # never restarted
        assert HANDOFF in alpha.say(CAROL, "And now?")["text"]
        sent = beta.emulator.send_text(CAROL, "anyone at beta?")
        time.sleep(1.5)
        assert [m for m in beta.emulator.messages(CAROL.id) if m["message_id"] > sent["message_id"]] == []
        shutil.rmtree(gamma.folder)
        host.wait_state("gamma", "absent", timeout=30)
    finally:
        gamma.emulator.stop()


def _add_token(hosting: Path, shop: Shop) -> None:
    with (hosting / "tokens.env").open("a") as tokens:
        tokens.write(f"{shop.token_env}={shop.emulator.token}\n")


def test_a_broken_shop_does_not_stop_the_others_and_is_started_once_fixed(
        host: HostHarness, shops: list[Shop], tmp_path: Path, tiny_base: Path) -> None:
    alpha, _ = shops
    broken = make_shop(tmp_path / "incoming", "broken", 14, tiny_base)
    try:
        config = broken.folder / "config.toml"
        good = config.read_text()
        config.write_text(good.replace(f"owner_ids = [{broken.owner.id}]", 'owner_ids = "nobody"'))  # a bad config
        _add_token(tmp_path, broken)
        shutil.move(str(broken.folder), str(tmp_path / "broken"))
        broken.folder, config = tmp_path / "broken", tmp_path / "broken" / "config.toml"
        host.wait_state("broken", "failed")
        assert "owner_ids" in host.host.shops["broken"].problem
        assert HANDOFF in alpha.say(CAROL, "Are you open?")["text"]
        config.write_text(good)  # fixed: picked up at the next look
        host.wait_state("broken", "running")
        assert HANDOFF in broken.say(CAROL, "Are you open?")["text"]
        assert host.host.shops["broken"].metrics.restarts == 1
        shutil.rmtree(broken.folder)
        host.wait_state("broken", "absent", timeout=30)
    finally:
        broken.emulator.stop()


def test_a_second_shop_with_the_same_bot_token_is_refused(host: HostHarness, shops: list[Shop], tmp_path: Path,
                                                          tiny_base: Path) -> None:
    alpha, _ = shops
    twin = make_shop(tmp_path / "incoming", "twin", 15, tiny_base)
    try:
        with (tmp_path / "tokens.env").open("a") as tokens:
            tokens.write(f"{twin.token_env}={alpha.emulator.token}\n")
        shutil.move(str(twin.folder), str(tmp_path / "twin"))
        host.wait_state("twin", "failed")
        assert "is the bot token of shop alpha too" in host.host.shops["twin"].problem
        assert HANDOFF in alpha.say(CAROL, "Only one of you?")["text"]
    finally:
        twin.emulator.stop()


def test_a_shop_whose_model_fails_to_load_is_retried_without_touching_the_others(
        tmp_path: Path, shops: list[Shop]) -> None:
    alpha, beta = shops
    bases, attempts = SharedBases(), {"beta": 0}
    good = exact_memory_runtimes(bases)

    def factory(settings):
        if "beta" in settings.shop.name_en and attempts["beta"] < 2:
            attempts["beta"] += 1
            raise RuntimeError("corrupt adapter: size mismatch for classifier.weight")
        return good(settings)

    harness = HostHarness(tmp_path, shops, HostOptions(runtime_factory=factory, poll_timeout_s=1),
                          hosting_toml="[hosting]\nwatch_seconds = 0.2\nretry_seconds = 0.3\n").start("alpha")
    try:
        assert HANDOFF in alpha.say(CAROL, "Hello?")["text"]
        harness.wait_state("beta", "running", timeout=30)  # after two failed starts
        assert attempts["beta"] == 2 and harness.host.shops["beta"].metrics.restarts == 2
        assert HANDOFF in beta.say(CAROL, "Hello?")["text"]
        assert "2 restarts" in beta.command(beta.owner, "status")["text"]
    finally:
        harness.stop()


def test_a_flood_limited_staff_chat_slows_only_its_own_shop(host: HostHarness, shops: list[Shop]) -> None:
    alpha, beta = shops
    alpha.emulator.fail_next("sendMessage", 429, retry_after=4, chat_id=alpha.staff_chat)
    alpha.emulator.send_text(CAROL, "A question for a busy shop")
    alpha.emulator.wait_for(lambda method, params: method == "sendMessage" and params["chat_id"] == alpha.staff_chat)
    started = time.monotonic()
    assert HANDOFF in beta.say(CAROL, "Meanwhile, at beta?")["text"]
    assert time.monotonic() - started < 2.5  # beta does not wait for alpha's retry_after
    alpha.emulator.wait_for_message(alpha.staff_chat, "A question for a busy shop", timeout=20)  # alpha retried


def test_retrains_of_different_shops_take_turns(host: HostHarness, shops: list[Shop],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import training.pipeline

    alpha, beta = shops
    running, release, order = [], threading.Event(), []

    def retrain(settings, trigger, args=None, backend=None):  # what run_retrain runs once it is the shop's turn
        running.append(settings.shop.name_en)
        order.append(settings.shop.name_en)
        release.wait(20)
        running.remove(settings.shop.name_en)
        return {"status": "refused", "reasons": ["test"]}

    monkeypatch.setattr(training.pipeline, "retrain", retrain)
    alpha.command(alpha.owner, "retrain")
    _wait(lambda: running == ["Shop alpha"])
    beta.command(beta.owner, "retrain")
    time.sleep(0.5)
    assert running == ["Shop alpha"]  # beta waits for its turn
    assert "waits for its turn" in beta.command(beta.owner, "status")["text"]
    assert "waits for its turn" not in alpha.command(alpha.owner, "status")["text"]
    release.set()
    alpha.emulator.wait_for_message(alpha.owner.id, "Retrain finished", timeout=20)
    beta.emulator.wait_for_message(beta.owner.id, "Retrain finished", timeout=20)
    assert order == ["Shop alpha", "Shop beta"]


def _wait(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.05)


# ---------------------------------------------------------------- the hosting folder
def test_the_hosting_folder_lists_shops_by_folder_or_by_the_shops_table(tmp_path: Path) -> None:
    for name in ("one", "two", "Not_A_Shop_Name"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.toml").write_text("")
    (tmp_path / "empty").mkdir()
    hosting = load_hosting(tmp_path)
    assert list(hosting.shops) == ["one", "two"] and hosting.settings.mode == "polling"
    assert hosting.settings.model_cache == tmp_path / "var" / "models"
    (tmp_path / "hosting.toml").write_text('[hosting]\nmode = "webhook"\nwebhook_url = "https://bots.example/tg"\n'
                                           '[[shops]]\nname = "first"\nconfig = "one/config.toml"\n')
    hosting = load_hosting(tmp_path)
    assert hosting.shops == {"first": tmp_path / "one" / "config.toml"}
    assert hosting.settings.webhook_of("first") == "https://bots.example/tg/first"


@pytest.mark.parametrize(("text", "message"), [
    ('[hosting]\nmode = "webhook"\n', "hosting.webhook_url: must be an https:// URL"),
    ("[hosting]\nwatch_second = 1\n", "hosting.watch_second: unknown key; did you mean hosting.watch_seconds?"),
    ('[[shops]]\nname = "Bad Name"\n', "shops[0].name: lower-case letters"),
    ('[[shops]]\nname = "a"\n[[shops]]\nname = "a"\n', "shops[1].name: 'a' is listed twice"),
    ("[shop]\n", "shop: unknown section of hosting.toml; did you mean [shops]?"),
])
def test_a_bad_hosting_file_is_refused_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    from settings import ConfigError

    (tmp_path / "hosting.toml").write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_hosting(tmp_path)


def test_each_shop_has_its_own_token_variable_and_shares_the_model_cache(tmp_path: Path) -> None:
    config = tmp_path / "a" / "config.toml"
    config.parent.mkdir()
    config.write_text('[telegram]\ntoken_env = "SHOP_A_TOKEN"\n')
    settings = load_shop_settings(config, tmp_path / "models", {"SHOP_A_TOKEN": "1:A", "TELEGRAM_BOT_TOKEN": "2:B"})
    assert settings.token == "1:A" and settings.paths.model_cache == tmp_path / "models"
    assert settings.paths.database == tmp_path / "a" / "var" / "shopbot.db"  # relative to the shop's config
    config.write_text('[paths]\nmodel_cache = "own-models"\n')
    own = load_shop_settings(config, tmp_path / "models", {"TELEGRAM_BOT_TOKEN": "2:B"})
    assert own.token == "2:B" and own.paths.model_cache == tmp_path / "a" / "own-models"
    assert base_key(own) != base_key(settings)  # the bundled base built into another folder: not shared
    from settings import ConfigError

    config.write_text('[telegram]\ntoken_env = "not a name"\n')
    with pytest.raises(ConfigError, match=r"telegram\.token_env: must be an environment variable name"):
        load_shop_settings(config, tmp_path / "models", {})


def test_shopbot_serve_refuses_a_missing_folder_or_a_bad_hosting_file(tmp_path: Path, capsys) -> None:
    import cli

    assert cli.main(["serve", "--shops", str(tmp_path / "nowhere")]) == 2
    assert "--shops: not a folder" in capsys.readouterr().err
    (tmp_path / "hosting.toml").write_text('[hosting]\nmode = "sometimes"\n')
    assert cli.main(["serve", "--shops", str(tmp_path)]) == 2
    assert "hosting.mode: must be one of polling, webhook" in capsys.readouterr().err


def test_tokens_may_come_from_the_hosting_env_file_read_at_each_start(tmp_path: Path) -> None:
    from settings import ConfigError, read_env_file

    tokens = tmp_path / "tokens.env"
    tokens.write_text("# the shops' bot tokens\nSHOP_A_TOKEN=1:A\nexport SHOP_B_TOKEN='2:B'\n\n")
    assert read_env_file(tokens) == {"SHOP_A_TOKEN": "1:A", "SHOP_B_TOKEN": "2:B"}
    tokens.write_text("SHOP_A_TOKEN 1:secret\n")
    with pytest.raises(ConfigError, match=r"tokens\.env:1: must be NAME=value") as refused:
        read_env_file(tokens)
    assert "secret" not in str(refused.value)
