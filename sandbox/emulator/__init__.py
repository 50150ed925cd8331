"""Local emulator of the Telegram Bot API (loopback HTTP, stdlib only) for tests and the sandbox.

Point a real PTB ``Application`` at it with ``.base_url(emu.base_url)`` and
``.base_file_url(emu.base_file_url)``, play the users with ``send_text``/``press_button``/...,
inspect the bot with ``messages``/``calls``/``wait_for`` and break it with ``fail_next``/
``delay_next``. Conventions:

* Params are decoded: JSON values (ints, bools, ``reply_markup``) become Python objects, free text
  (``text``, ``caption``) stays ``str``, uploaded files become ``bytes``.
* Message ids count up per chat, shared by user and bot messages as in Telegram, so they are
  cursors: ``wait_for_message(chat, after=sent["message_id"])`` is the reply to ``sent``.
* ``parse_mode="HTML"`` is validated like Telegram (unknown/unbalanced tags or a bare ``<`` give
  "can't parse entities"); ``text`` is what users see, ``raw_text`` what the bot sent.
* ``messages()`` gives Bot API Message fields plus ``chat_id``, ``method`` (e.g. "sendPhoto"),
  ``raw_text``, ``reply_markup`` (any kind, or None), ``file_bytes`` (uploads), ``history`` (earlier
  ``{"text", "reply_markup"}`` versions) and ``deleted``.
* Refusals are Telegram's (status and description): text over 4,096 / captions over 1,024
  UTF-16 units (sends and edits), callback_data over 64 bytes, answerCallbackQuery later than
  ``callback_answer_window_s`` after the press, chats nobody wrote in nor ``add_chat`` registered
  ("chat not found"), users who ``block_bot`` (403; the bot gets ``my_chat_member`` updates on
  blocking and unblocking, as from Telegram), unknown methods (404 "Not Found").
* Flood limits are on unless ``flood_limits=False``: messages sent to one chat get a burst of
  ``chat_burst`` then about 1/s, to one group ``group_burst`` then about 20/min; the next one is
  answered 429 "Too Many Requests: retry after N" with ``parameters.retry_after`` (edits and
  callback answers are not counted).
* After ``setWebhook`` each update is POSTed to the webhook (with its ``secret_token`` header), one at
  a time, retried until answered 2xx, as Telegram does; the URL must be on 127.0.0.1, ::1 or localhost.
  ``deliveries()``/``wait_for_delivery`` show the attempts; ``deleteWebhook`` returns to polling.

The parts, from the bottom: ``transport`` (the HTTP server and parameter decoding), ``refusals``
(Telegram's errors and limits), ``state`` (chats, messages, the update queue, under one lock), then
the mixins on that state: ``users`` (what users do), ``methods`` (the Bot API methods), ``updates``
(getUpdates and the webhook), ``observe`` (what tests see); ``core`` puts them together as
``BotAPIEmulator`` with its lifecycle, fault injection and call dispatch.
"""

from sandbox.emulator.core import BotAPIEmulator
from sandbox.emulator.state import as_api_message
from sandbox.emulator.users import TINY_PNG, FakeUser

__all__ = ["TINY_PNG", "BotAPIEmulator", "FakeUser", "as_api_message"]
