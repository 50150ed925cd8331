"""Every user-facing string, in Chinese and English, and how a reply language is chosen.

The tables live one module per audience: `customer` (plain text, never parse_mode), `staff`
(HTML: values put into them must be escaped by the caller with `html.escape`), `owner` (plain
text: status, report, learning section, chart labels, estimates), `faq` (plain text: editing the
FAQ with /faq) and `commands` (the command menu). Here: picking the language, and one lookup
function per kind of text; `{shop}` is filled with the shop's name in that language.
"""

from __future__ import annotations

from collections.abc import Callable

from settings import Settings
from shop.texts.customer import CUSTOMER
from shop.texts.faq import FAQ
from shop.texts.owner import CHART, ESTIMATE, LEARNING, OWNER
from shop.texts.staff import STAFF
from storage.text import detect_language
from vocabulary import SENTIMENT_LABELS

Tables = dict[str, dict[str, str]]


def shop_name(settings: Settings, language: str) -> str:
    """The shop's name as shown in `language`."""
    return settings.shop.name if language == "zh" else settings.shop.name_en


def _supported(settings: Settings, language: str | None) -> str | None:
    return language if language in settings.shop.languages else None


def language_from_code(language_code: str | None) -> str | None:
    """"zh"/"en" from a Telegram language_code such as "zh-hans" or "en-GB", else None."""
    code = (language_code or "").lower()
    for language in ("zh", "en"):
        if code == language or code.startswith((language + "-", language + "_")):
            return language
    return None


def text_language(text: str | None) -> str | None:
    """The language a text is written in, or None when it has no letters or CJK characters."""
    if not text:
        return None
    found = detect_language(text, default="")  # type: ignore[arg-type]
    return found or None


def pick_language(settings: Settings, language_code: str | None, text: str | None = None,
                  stored: str | Callable[[], str | None] | None = None) -> str:
    """The reply language: the message's own language, else Telegram's language_code, else stored, else default.

    `stored` may be a function that looks it up: called only when the text and language_code don't decide.

    A customer whose phone is set to English but who writes 你们几点开门 gets Chinese: the
    words they typed are the stronger signal. Commands and stickers pass no text.
    """
    for candidate in (text_language(text), language_from_code(language_code)):
        if (chosen := _supported(settings, candidate)) is not None:
            return chosen
    return _supported(settings, stored() if callable(stored) else stored) or settings.default_language


def _table(tables: Tables, language: str) -> dict[str, str]:
    """The table of `language`, English for a language it has none of."""
    return tables.get(language, tables["en"])


def _with_shop(settings: Settings, tables: Tables, language: str, key: str, values: dict[str, object]) -> str:
    return _table(tables, language)[key].format(shop=shop_name(settings, language), **values)


def customer_text(settings: Settings, language: str, key: str, **values: object) -> str:
    """A customer-facing string in `language`, with {shop} filled in."""
    return _with_shop(settings, CUSTOMER, language, key, values)


def staff_text(settings: Settings, key: str, **values: object) -> str:
    """A staff-chat string in the shop's default language (HTML: escape the values)."""
    return _table(STAFF, settings.default_language)[key].format(**values)


_REVIEW_REPLY = {"positive": "thanks_positive", "neutral": "thanks_neutral", "negative": "sorry_negative"}


def review_reply(settings: Settings, language: str, label: str | None) -> str:
    """What a customer is told after a review with this sentiment (unknown: the neutral thanks)."""
    return customer_text(settings, language, _REVIEW_REPLY.get(label or "", "thanks_neutral"))


def label_name(settings: Settings, label: str | None) -> str:
    """A sentiment label as staff read it."""
    if label in SENTIMENT_LABELS:
        return staff_text(settings, label)
    return label or "?"


def owner_text(settings: Settings, language: str, key: str, **values: object) -> str:
    """An owner-facing string in `language`, with {shop} filled in (sent as plain text)."""
    return _with_shop(settings, OWNER, language, key, values)


def faq_text(settings: Settings, language: str, name: str, /, **values: object) -> str:
    """A string of /faq (editing the FAQ) in `language`, with {shop} filled in (sent as plain text); its
    placeholders may be called anything, {key} (an entry's name) included."""
    return _with_shop(settings, FAQ, language, name, values)


def learning_text(settings: Settings, language: str, key: str, **values: object) -> str:
    """A string of the report's learning section or of the weekly job's notices, in `language` (plain text)."""
    return _with_shop(settings, LEARNING, language, key, values)


def estimate_text(language: str, key: str, **values: object) -> str:
    """A word of an accuracy estimate's description ("5-fold CV over all labelled data", the separator)."""
    return _table(ESTIMATE, language)[key].format(**values)


def chart_text(language: str, key: str) -> str:
    """A title or legend label of the accuracy chart."""
    return _table(CHART, language)[key]
