"""End-to-end tests of bot.emulator: the real python-telegram-bot stack against the fake Bot API."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, EndPointNotFound, Forbidden, InvalidToken, NetworkError, RetryAfter, TimedOut
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from sandbox.emulator import TINY_PNG, BotAPIEmulator, FakeUser

ALICE = FakeUser(id=1001, first_name="Alice", language_code="en", username="alice")
SAM = FakeUser(id=2002, first_name="Sam")
STAFF_CHAT = -100777


# ---------------------------------------------------------------- a tiny bot to drive
async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Prices", callback_data="prices"),
                                      InlineKeyboardButton("Hours", callback_data="hours")]])
    await update.effective_message.reply_text("Welcome to the shop!", reply_markup=keyboard)


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    await query.answer(f"loading {query.data}")
    await query.edit_message_text(f"You chose <b>{query.data}</b>", parse_mode="HTML")


async def send_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.effective_message.reply_photo(TINY_PNG, caption="Our shop front")


async def on_sticker(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.effective_message.reply_text(f"Nice sticker {update.message.sticker.emoji}")


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    await message.reply_text(f"<i>echo:</i> {html.escape(message.text)}", parse_mode="HTML")


def build_app(emu: BotAPIEmulator, errors: list[BaseException],
              rate_limiter: AIORateLimiter | None = None) -> Application:
    builder = (Application.builder().token(emu.token)
               .base_url(emu.base_url).base_file_url(emu.base_file_url))
    if rate_limiter is not None:
        builder = builder.rate_limiter(rate_limiter)
    app = builder.build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CommandHandler("photo", send_photo))
    app.add_handler(CallbackQueryHandler(on_button))
    app.add_handler(MessageHandler(filters.Sticker.ALL, on_sticker))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))

    async def record_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        errors.append(context.error)

    app.add_error_handler(record_error)
    return app


def run_bot(emu: BotAPIEmulator, scenario: Callable[[], None]) -> None:
    """Poll with the real Application while ``scenario`` (blocking) plays the users."""
    errors: list[BaseException] = []

    async def main() -> None:
        app = build_app(emu, errors)
        async with app:
            await app.start()
            await app.updater.start_polling(poll_interval=0.0, timeout=1)
            try:
                await asyncio.to_thread(scenario)
            finally:
                await app.updater.stop()
                await app.stop()

    asyncio.run(main())
    assert not errors, errors


def direct_bot(emu: BotAPIEmulator, token: str | None = None) -> Bot:
    return Bot(token or emu.token, base_url=emu.base_url, base_file_url=emu.base_file_url)


def raw_call(emu: BotAPIEmulator, method: str, **params: object) -> tuple[int, dict]:
    """(HTTP status, JSON body) of one Bot API call made without PTB."""
    request = urllib.request.Request(f"{emu.base_url}{emu.token}/{method}", json.dumps(params).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


# ---------------------------------------------------------------- conversations
def test_command_button_edit_and_echo_through_polling(emulator: BotAPIEmulator) -> None:
    def scenario() -> None:
        sent = emulator.send_command(ALICE, "start")
        welcome = emulator.wait_for_message(ALICE.id, "Welcome", after=sent["message_id"])
        assert welcome["message_id"] == sent["message_id"] + 1
        assert welcome["chat"] == {"id": ALICE.id, "type": "private", "first_name": "Alice"}
        assert welcome["from"]["is_bot"] and welcome["from"]["username"] == "shop_test_bot"
        buttons = welcome["reply_markup"]["inline_keyboard"][0]
        assert [b["callback_data"] for b in buttons] == ["prices", "hours"]

        query = emulator.press_button(ALICE, welcome, "prices")
        _, answer = emulator.wait_for(lambda m, p: m == "answerCallbackQuery")
        assert answer == {"callback_query_id": query["id"], "text": "loading prices"}
        emulator.wait_for(lambda m, p: m == "editMessageText")
        [edited] = emulator.messages(ALICE.id)
        assert edited["text"] == "You chose prices"  # HTML tags stripped, as users see it
        assert edited["raw_text"] == "You chose <b>prices</b>"
        assert edited["reply_markup"] is None  # editing text without a markup drops the keyboard
        assert edited["history"][0]["text"] == "Welcome to the shop!"
        with pytest.raises(ValueError, match="offered"):
            emulator.press_button(ALICE, edited, "prices")  # the keyboard is gone

        said = emulator.send_text(ALICE, "Is <this> & that in stock?")
        reply = emulator.wait_for_message(ALICE.id, after=said["message_id"])
        assert reply["text"] == "echo: Is <this> & that in stock?"

        edit = emulator.send_edited_text(ALICE, said, "Is it in stock?")
        assert edit["edit_date"] and edit["message_id"] == said["message_id"]
        emulator.wait_for_message(ALICE.id, "echo: Is it in stock?")

    run_bot(emulator, scenario)
    methods = [method for method, _ in emulator.requests]
    assert methods[:2] == ["getMe", "deleteWebhook"] and "getUpdates" in methods
    assert emulator.pending_updates() == 0


def test_group_photo_sticker_and_reply(emulator: BotAPIEmulator) -> None:
    def scenario() -> None:
        asked = emulator.send_command(SAM, "photo", chat_id=STAFF_CHAT)
        photo = emulator.wait_for_message(STAFF_CHAT, "shop front", after=asked["message_id"])
        assert photo["chat"] == {"id": STAFF_CHAT, "type": "supergroup", "title": "Staff"}
        assert photo["file_bytes"] == TINY_PNG
        assert photo["photo"][0]["width"] == 1 and photo["photo"][0]["file_size"] == len(TINY_PNG)
        assert photo["reply_to_message"]["message_id"] == asked["message_id"]  # quoted in groups

        sticker = emulator.send_sticker(ALICE, emoji="🎉")
        assert sticker["sticker"]["type"] == "regular"
        emulator.wait_for_message(ALICE.id, "Nice sticker 🎉")

        answer = emulator.reply_to(SAM, photo, "looks good", chat_id=None)
        assert answer["reply_to_message"]["photo"] == photo["photo"]
        emulator.wait_for_message(STAFF_CHAT, "echo: looks good")

    run_bot(emulator, scenario)
    _, params = emulator.calls("sendPhoto")[0]
    assert params["photo"] == TINY_PNG and params["caption"] == "Our shop front"
    assert params["chat_id"] == STAFF_CHAT and isinstance(params["reply_parameters"], dict)


# ---------------------------------------------------------------- raw API behaviour
def test_get_updates_offset_limit_and_long_poll_cap(emulator: BotAPIEmulator) -> None:
    async def main() -> None:
        async with direct_bot(emulator) as bot:
            first = emulator.push_update({"message": emulator.send_text(ALICE, "one")})
            emulator.send_channel_post(-100500, "news")
            updates = await bot.get_updates(limit=2)
            assert [u.update_id for u in updates] == [first - 1, first]  # send_text queued one
            assert emulator.pending_updates() == 3
            updates = await bot.get_updates(offset=first + 1)
            assert updates[0].channel_post.text == "news" and emulator.pending_updates() == 1
            await bot.get_updates(offset=updates[0].update_id + 1, timeout=0)
            assert emulator.pending_updates() == 0
            emulator.send_photo(ALICE, caption="my order")
            emulator.send_voice(ALICE, chat_id=STAFF_CHAT, duration=3)
            photo, voice = await bot.get_updates(offset=updates[0].update_id + 1)
            assert photo.message.caption == "my order" and photo.message.photo[0].width == 1
            assert voice.message.voice.duration in (3, dt.timedelta(seconds=3))
            assert voice.message.chat.type == "supergroup" and voice.effective_user.id == ALICE.id
            await bot.get_updates(offset=voice.update_id + 1)
            emulator.long_poll_cap = 0.3
            started = time.monotonic()
            assert await bot.get_updates(timeout=30, read_timeout=5) == ()
            assert 0.25 < time.monotonic() - started < 1.5  # long poll capped for quick shutdown

    asyncio.run(main())


def test_html_not_modified_commands_chat_and_wrong_token(emulator: BotAPIEmulator) -> None:
    emulator.add_chat(ALICE.id, "Alice")
    emulator.add_chat(STAFF_CHAT)

    async def main() -> None:
        async with direct_bot(emulator) as bot:
            with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
                await bot.send_message(ALICE.id, "1 < 2", parse_mode="HTML")
            sent = await bot.send_message(ALICE.id, "hi")
            with pytest.raises(BadRequest, match="not modified"):
                await bot.edit_message_text("hi", ALICE.id, sent.message_id)
            assert await bot.delete_message(ALICE.id, sent.message_id)
            assert emulator.messages(ALICE.id) == []
            await bot.set_my_commands([("start", "Start shopping")])
            assert [c.command for c in await bot.get_my_commands()] == ["start"]
            assert (await bot.get_chat(STAFF_CHAT)).title == "Staff"
        with pytest.raises(InvalidToken):
            await direct_bot(emulator, token="999:WRONG").initialize()

    asyncio.run(main())


def test_uploads_keep_exact_bytes_and_concurrent_sends_get_distinct_ids(
        emulator: BotAPIEmulator) -> None:
    emulator.add_chat(ALICE.id, "Alice")
    payload = bytes(range(256)) * 40 + b"\r\n\r\n--boundary\r\n"

    emulator.add_chat(STAFF_CHAT)
    emulator.flood_limits = False  # 20 messages at once to one chat: this test is about ids, not pacing

    async def main() -> None:
        async with direct_bot(emulator) as bot:
            document = await bot.send_document(STAFF_CHAT, payload, filename="orders.csv",
                                               caption="<b>Orders</b>", parse_mode="HTML")
            assert document.caption == "Orders" and document.document.file_size == len(payload)
            sent = await asyncio.gather(*(bot.send_message(ALICE.id, f"n{i}") for i in range(20)))
            assert sorted(m.message_id for m in sent) == list(range(1, 21))

    asyncio.run(main())
    [stored] = emulator.messages(STAFF_CHAT)
    assert stored["file_bytes"] == payload and stored["method"] == "sendDocument"
    assert len(emulator.messages(ALICE.id)) == 20


# ---------------------------------------------------------------- fault injection
def test_429_is_retried_by_the_rate_limiter(emulator: BotAPIEmulator) -> None:
    emulator.add_chat(ALICE.id, "Alice")
    async def main() -> None:
        async with direct_bot(emulator) as bot:
            emulator.fail_next("sendMessage", status=429, retry_after=3)
            with pytest.raises(RetryAfter) as raised:
                await bot.send_message(ALICE.id, "no limiter")
            assert raised.value.retry_after in (3, dt.timedelta(seconds=3))
        app = build_app(emulator, [], rate_limiter=AIORateLimiter(max_retries=2))
        async with app:
            emulator.fail_next("sendMessage", status=429, retry_after=1)
            message = await app.bot.send_message(ALICE.id, "with limiter")
        assert message.text == "with limiter"
        assert [p["text"] for _, p in emulator.calls("sendMessage")] == ["no limiter"] + [
            "with limiter"] * 2

    asyncio.run(main())


def test_injected_errors_map_to_ptb_exceptions(emulator: BotAPIEmulator) -> None:
    emulator.add_chat(ALICE.id, "Alice")
    async def main() -> None:
        async with direct_bot(emulator) as bot:
            emulator.fail_next("sendMessage", status=500, times=2)
            emulator.fail_next("sendChatAction", status=403, description="Forbidden: bot was "
                                                                         "blocked by the user")
            for _ in range(2):
                with pytest.raises(NetworkError, match="Injected failure"):
                    await bot.send_message(ALICE.id, "x")
            assert (await bot.send_message(ALICE.id, "third time lucky")).message_id == 1
            with pytest.raises(Forbidden, match="blocked"):
                await bot.send_chat_action(ALICE.id, "typing")

    asyncio.run(main())


def test_an_injected_error_for_one_chat_spares_the_others(emulator: BotAPIEmulator) -> None:
    emulator.add_chat(ALICE.id, "Alice")
    emulator.add_chat(SAM.id, "Sam")
    async def main() -> None:
        async with direct_bot(emulator) as bot:
            emulator.fail_next("sendMessage", status=500, chat_id=ALICE.id)
            assert (await bot.send_message(SAM.id, "to Sam")).text == "to Sam"
            with pytest.raises(NetworkError, match="Injected failure"):
                await bot.send_message(ALICE.id, "to Alice")
            assert (await bot.send_message(ALICE.id, "again")).text == "again"

    asyncio.run(main())


def test_a_delay_after_the_effect_shows_the_message_before_the_send_returns(emulator: BotAPIEmulator) -> None:
    emulator.add_chat(ALICE.id, "Alice")
    async def main() -> None:
        async with direct_bot(emulator) as bot:
            emulator.delay_next("sendMessage", 1.0, effect_first=True)
            sending = asyncio.create_task(bot.send_message(ALICE.id, "seen first"))
            seen = await asyncio.to_thread(emulator.wait_for_message, ALICE.id, "seen first", timeout=5)
            assert not sending.done()  # visible in the chat while the bot still waits for its answer
            assert (await sending).message_id == seen["message_id"]

    asyncio.run(main())


def test_delay_beyond_read_timeout_is_timed_out(emulator: BotAPIEmulator) -> None:
    emulator.add_chat(ALICE.id, "Alice")
    async def main() -> None:
        async with direct_bot(emulator) as bot:
            emulator.delay_next("sendMessage", 0.5)
            with pytest.raises(TimedOut):
                await bot.send_message(ALICE.id, "slow", read_timeout=0.1)
            # Like Telegram, the server still performs the call the client gave up on.
            assert emulator.wait_for_message(ALICE.id, "slow", timeout=2)["message_id"] == 1
            assert (await bot.send_message(ALICE.id, "no delay left")).message_id == 2

    asyncio.run(main())


def test_wait_for_timeout_lists_recent_calls(emulator: BotAPIEmulator) -> None:
    emulator.add_chat(ALICE.id, "Alice")
    async def main() -> None:
        async with direct_bot(emulator) as bot:
            await bot.send_message(ALICE.id, "hello")

    asyncio.run(main())
    with pytest.raises(TimeoutError, match=r"sendMessage\(chat_id=1001, text='hello'\)"):
        emulator.wait_for(lambda method, params: method == "sendPhoto", timeout=0.1)
    with pytest.raises(TimeoutError, match="hello"):
        emulator.wait_for_message(ALICE.id, "goodbye", timeout=0.1)


# ---------------------------------------------------------------- refusals, as Telegram's
def test_text_length_is_counted_in_utf16_units_on_sends_and_edits(emulator: BotAPIEmulator) -> None:
    emulator.send_text(ALICE, "hi")

    async def main() -> None:
        async with direct_bot(emulator) as bot:
            sent = await bot.send_message(ALICE.id, "🧋" * 2048)  # 2,048 characters, 4,096 UTF-16 units
            with pytest.raises(BadRequest, match=r"^Message is too long$"):
                await bot.send_message(ALICE.id, "🧋" * 2048 + "x")
            await bot.send_message(ALICE.id, f"<b>{'好' * 4096}</b>", parse_mode="HTML")  # tags don't count
            with pytest.raises(BadRequest, match=r"(?i)^message_too_long$"):
                await bot.edit_message_text("🧋" * 2049, ALICE.id, sent.message_id)
            assert (await bot.edit_message_text("🧋" * 2047, ALICE.id, sent.message_id)).text == "🧋" * 2047

    asyncio.run(main())


def test_caption_length_is_counted_in_utf16_units(emulator: BotAPIEmulator) -> None:
    emulator.send_text(ALICE, "hi")

    async def main() -> None:
        async with direct_bot(emulator) as bot:
            await bot.send_photo(ALICE.id, TINY_PNG, caption="🧋" * 512)
            with pytest.raises(BadRequest, match=r"(?i)caption is too long"):
                await bot.send_document(ALICE.id, b"x", filename="x.txt", caption="🧋" * 513)

    asyncio.run(main())


def test_callback_data_over_64_bytes_is_refused_on_sends_and_edits(emulator: BotAPIEmulator) -> None:
    emulator.send_text(ALICE, "hi")
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="好" * 22)]])  # 66 bytes, 22 chars
    fits = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="好" * 21)]])

    async def main() -> None:
        async with direct_bot(emulator) as bot:
            with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
                await bot.send_message(ALICE.id, "menu", reply_markup=too_long)
            sent = await bot.send_message(ALICE.id, "menu", reply_markup=fits)
            with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
                await bot.edit_message_reply_markup(ALICE.id, sent.message_id, reply_markup=too_long)
            with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
                await bot.edit_message_text("menu 2", ALICE.id, sent.message_id, reply_markup=too_long)
            assert emulator.messages(ALICE.id)[0]["reply_markup"] == fits.to_dict()

    asyncio.run(main())


def test_callback_answer_after_the_window_is_too_old(emulator: BotAPIEmulator) -> None:
    emulator.send_text(ALICE, "hi")
    emulator.callback_answer_window_s = 0.2
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("go", callback_data="go")]])

    async def main() -> None:
        async with direct_bot(emulator) as bot:
            await bot.send_message(ALICE.id, "menu", reply_markup=keyboard)
            [menu] = emulator.messages(ALICE.id)
            late = emulator.press_button(ALICE, menu, "go")
            await asyncio.sleep(0.3)
            with pytest.raises(BadRequest, match="Query is too old and response timeout expired"):
                await bot.answer_callback_query(late["id"])
            in_time = emulator.press_button(ALICE, menu, "go")
            assert await bot.answer_callback_query(in_time["id"], "ok")
            with pytest.raises(BadRequest, match="Query is too old"):  # answered already
                await bot.answer_callback_query(in_time["id"])

    asyncio.run(main())


def test_unknown_chats_are_not_found_until_someone_writes_or_a_test_adds_them(emulator: BotAPIEmulator) -> None:
    async def main() -> None:
        async with direct_bot(emulator) as bot:
            for chat_id in (STAFF_CHAT, SAM.id):
                with pytest.raises(BadRequest, match=r"^Chat not found$"):
                    await bot.send_message(chat_id, "hello?")
            with pytest.raises(BadRequest, match=r"^Chat not found$"):
                await bot.get_chat(STAFF_CHAT)
            emulator.add_chat(STAFF_CHAT, title="Tea staff")
            assert (await bot.send_message(STAFF_CHAT, "hello")).chat.title == "Tea staff"
            emulator.send_text(SAM, "hi bot")
            assert (await bot.send_message(SAM.id, "hello")).chat.first_name == "Sam"

    asyncio.run(main())
    assert raw_call(emulator, "sendMessage", chat_id=-100123, text="x") == (
        400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})


def test_a_user_who_blocked_the_bot_gets_nothing_until_they_unblock_it(emulator: BotAPIEmulator) -> None:
    emulator.send_text(ALICE, "hi")

    async def main() -> None:
        async with direct_bot(emulator) as bot:
            before = await bot.send_message(ALICE.id, "before")
            emulator.block_bot(ALICE)
            with pytest.raises(Forbidden, match=r"^Forbidden: bot was blocked by the user$"):
                await bot.send_message(ALICE.id, "while blocked")
            with pytest.raises(Forbidden, match="blocked"):
                await bot.edit_message_text("edited while blocked", ALICE.id, before.message_id)
            emulator.unblock_bot(ALICE)
            await bot.send_message(ALICE.id, "after unblocking")
            emulator.block_bot(ALICE)
            emulator.send_text(ALICE, "I'm back")  # a client unblocks the bot to write to it
            await bot.send_message(ALICE.id, "after writing")

    asyncio.run(main())
    assert [m["text"] for m in emulator.messages(ALICE.id)] == ["before", "after unblocking", "after writing"]
    emulator.block_bot(ALICE)
    assert raw_call(emulator, "sendMessage", chat_id=ALICE.id, text="x") == (
        403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})


def test_blocking_and_unblocking_send_my_chat_member_updates(emulator: BotAPIEmulator) -> None:
    async def main() -> list[tuple[str, str]]:
        async with direct_bot(emulator) as bot:
            emulator.block_bot(ALICE)
            emulator.block_bot(ALICE)  # already blocked: no second update
            emulator.send_text(ALICE, "hi again")  # writing unblocks first
            updates = await bot.get_updates(timeout=0)
            return [(u.my_chat_member.old_chat_member.status, u.my_chat_member.new_chat_member.status)
                    if u.my_chat_member else ("message", u.message.text) for u in updates]

    assert asyncio.run(main()) == [("member", "kicked"), ("kicked", "member"), ("message", "hi again")]


def test_unknown_method_is_404_not_found(emulator: BotAPIEmulator) -> None:
    async def main() -> None:
        async with direct_bot(emulator) as bot:
            with pytest.raises(EndPointNotFound, match="sendTelepathy"):
                await bot.do_api_request("sendTelepathy")

    asyncio.run(main())
    assert raw_call(emulator, "sendTelepathy", chat_id=1) == (
        404, {"ok": False, "error_code": 404, "description": "Not Found"})


def test_messages_to_one_chat_are_limited_to_a_burst_then_about_one_a_second(emulator: BotAPIEmulator) -> None:
    emulator.send_text(ALICE, "hi")

    async def main() -> None:
        async with direct_bot(emulator) as bot:
            for n in range(emulator.chat_burst):
                await bot.send_message(ALICE.id, f"burst {n}")
            with pytest.raises(RetryAfter) as raised:
                await bot.send_message(ALICE.id, "one too many")
            assert raised.value.retry_after in (1, dt.timedelta(seconds=1))
            await bot.edit_message_text("edits are not counted", ALICE.id, 2)
            await asyncio.sleep(1.1)
            await bot.send_message(ALICE.id, "a second later")

    asyncio.run(main())
    status, body = raw_call(emulator, "sendMessage", chat_id=ALICE.id, text="x")
    assert (status, body["description"], body["parameters"]) == (
        429, "Too Many Requests: retry after 1", {"retry_after": 1})


def test_messages_to_one_group_are_limited_to_about_twenty_a_minute(emulator: BotAPIEmulator) -> None:
    emulator.add_chat(STAFF_CHAT)
    emulator.chat_burst = 100  # only the group limit, on its own

    async def main() -> None:
        async with direct_bot(emulator) as bot:
            for n in range(emulator.group_burst):
                await bot.send_message(STAFF_CHAT, f"mirror {n}")
            with pytest.raises(RetryAfter) as raised:
                await bot.send_message(STAFF_CHAT, "one too many")
            retry_after = raised.value.retry_after
            seconds = retry_after.total_seconds() if isinstance(retry_after, dt.timedelta) else retry_after
            assert 1 <= seconds <= 3  # the next of 20/min is due 3 s after the first

    asyncio.run(main())
    emulator.flood_limits = False
    assert raw_call(emulator, "sendMessage", chat_id=STAFF_CHAT, text="unlimited")[0] == 200
