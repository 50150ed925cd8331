"""What staff see: the mirror of each decision in the staff chat, its buttons, and its edits.

A mirror message (HTML) says what the customer wrote, what the bot did and how sure it was;
its buttons depend on the decision:

    answered question / review:  [✅ correct] [❌ incorrect]
    review, no sentiment model:  [😊 positive] [😐 neutral] [😞 negative] [✍ a question: write the answer]
      with a candidate's guess:  [✅ <its guess>] above them (the guess is from an unpromoted model)
      ❌ on a review:            [😊 positive] [😐 neutral] [😞 negative]
                                 [✍ a question: write the answer] [↩ back]
      ❌ on a question:          [📖 next best FAQ entries ...] [✍ write the answer]
                                 [😊 / 😐 / 😞 it's a review] [↩ back]
    handed-off question:         [📖 best FAQ guesses ...] [✍ write the answer] [😊 / 😐 / 😞 it's a review]
    during a takeover:           [▶ resume the bot]  (the header says staff are talking to them)
    while someone types:         [✖ cancel]

After a correction the message keeps its text, gains one line saying who did what, and loses
its buttons.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot import callbacks, takeover_callbacks
from bot.callbacks import ButtonAction
from bot.limits import utf16_cut
from settings import Settings
from shop.formatting import percent
from shop.review_queue import candidate_guess, must_act
from shop.texts import label_name, staff_text
from shop.texts.staff import STAFF
from storage.records import Decision, FaqEntry
from vocabulary import SENTIMENT_LABELS, Action, MessageKind, SuggestionOutcome

MAX_QUOTE = 3000  # UTF-16 units of the customer's text; the mirror's other lines fit in the rest of 4,096
MAX_ANSWER = 400  # UTF-16 units, as all the cuts below
MAX_BUTTON = 40
LABEL_EMOJI = {"positive": "😊", "neutral": "😐", "negative": "😞"}
QuestionLookup = Callable[[str], str | None]  # FAQ key -> its question in the staff language


@dataclass(frozen=True)
class Customer:
    """Who wrote the message, as far as the mirror needs."""

    id: int
    name: str
    language: str


def user_link(user_id: int, name: str) -> str:
    """An HTML link that opens a chat with the user."""
    return f'<a href="tg://user?id={int(user_id)}">{html.escape(name or str(user_id))}</a>'


def _quote(text: str | None, settings: Settings) -> str:
    if text is None:
        return f"<i>{html.escape(staff_text(settings, 'deleted_message'))}</i>"
    if not text.strip():
        return "“”"
    return f"“{html.escape(utf16_cut(text, MAX_QUOTE))}”"


def _faq_title(key: str, lookup: QuestionLookup) -> str:
    return lookup(key) or key


def mirror_text(settings: Settings, decision: Decision, text: str | None, customer: Customer,
                answer: FaqEntry | None, lookup: QuestionLookup) -> str:
    """The staff-chat mirror of one decision (HTML)."""
    confidence = percent(decision.confidence)
    guess = candidate_guess(decision)  # no sentiment adapter passed the gate: the newest unpromoted one's guess
    if decision.action == Action.TAKEN_OVER:  # the marker: staff are in this conversation, the bot said nothing
        header = staff_text(settings, "takeover_mirror")
    elif guess is not None:
        key = "review_candidate_negative" if guess == "negative" else "review_candidate"
        header = staff_text(settings, key, label=label_name(settings, guess),
                            confidence=percent(decision.alternatives[0][1]))
    elif decision.kind == MessageKind.REVIEW and decision.label is None:
        header = staff_text(settings, "review_unlabelled")
    elif decision.kind == MessageKind.REVIEW:
        key = "review_negative" if decision.label == "negative" else "review"
        header = staff_text(settings, key, label=label_name(settings, decision.label), confidence=confidence)
    elif decision.action == Action.ANSWERED:
        key = "question_memory" if decision.source == "memory" else "question_answered"
        header = staff_text(settings, key, confidence=confidence)
    else:
        header = staff_text(settings, "question_handoff", confidence=confidence)
    lines = [f"<b>{html.escape(header)}</b>",
             staff_text(settings, "from", who=user_link(customer.id, customer.name), language=customer.language),
             _quote(text, settings)]
    if decision.suggestion in (SuggestionOutcome.PICKED, SuggestionOutcome.REFUSED,
                               SuggestionOutcome.UNANSWERED):  # "did you mean…?" was shown
        lines.append(html.escape(staff_text(settings, f"suggest_{decision.suggestion}")))
    if decision.kind == MessageKind.QUESTION and decision.action == Action.ANSWERED and answer is not None:
        lines.append(html.escape(staff_text(settings, "bot_answered", question=_faq_title(answer.key, lookup),
                                            answer=utf16_cut(answer.answer, MAX_ANSWER))))
    elif decision.kind == MessageKind.QUESTION and decision.alternatives:
        guesses = ", ".join(f"{_faq_title(key, lookup)} {percent(score)}"
                            for key, score in decision.alternatives[: callbacks.MAX_ALTERNATIVES])
        lines.append(html.escape(staff_text(settings, "guesses", guesses=guesses)))
    if guess is not None:
        lines.append(html.escape(staff_text(settings, "candidate_note")))
    if decision.kind == MessageKind.QUESTION:
        lines.append(html.escape(staff_text(settings, "reply_hint")))
    elif decision.label == "negative":
        lines.append(html.escape(staff_text(settings, "contact_hint")))
    return "\n".join(lines)


def should_notify(decision: Decision) -> bool:
    """Handoffs, staff conversations (a takeover), negative reviews and reviews no model could label (any may be a
    complaint; with an unpromoted candidate's guess, those it thinks negative) ring; routine mirrors arrive silently."""
    return must_act(decision)


def _button(text: str, decision_id: int, action: ButtonAction, arg: str | int | None = None) -> InlineKeyboardButton:
    return InlineKeyboardButton(utf16_cut(text, MAX_BUTTON), callback_data=callbacks.encode(decision_id, action, arg))


def _faq_buttons(settings: Settings, decision: Decision, lookup: QuestionLookup,
                 skip_current: bool) -> list[list[InlineKeyboardButton]]:
    rows = []
    for number, (key, score) in enumerate(decision.alternatives[: callbacks.MAX_ALTERNATIVES]):
        if skip_current and key == decision.label:
            continue
        rows.append([_button(f"📖 {_faq_title(key, lookup)} · {percent(score)}", decision.id, ButtonAction.FAQ, number)])
    rows.append([_button(staff_text(settings, "btn_write"), decision.id, ButtonAction.ANSWER)])
    return rows


def _question_button(settings: Settings, decision: Decision) -> list[InlineKeyboardButton]:
    """For a "review" that was really a question: answer it (the answer becomes an FAQ entry)."""
    return [_button(staff_text(settings, "btn_write_question"), decision.id, ButtonAction.ANSWER)]


def main_keyboard(settings: Settings, decision: Decision, lookup: QuestionLookup) -> InlineKeyboardMarkup:
    """The buttons a fresh mirror carries (a takeover mirror: only ▶ resume the bot)."""
    if decision.action == Action.TAKEN_OVER:
        return InlineKeyboardMarkup([[InlineKeyboardButton(utf16_cut(staff_text(settings, "btn_resume"), MAX_BUTTON),
                                                           callback_data=takeover_callbacks.encode(decision.id))]])
    if decision.kind == MessageKind.QUESTION and decision.action == Action.HANDOFF:
        return InlineKeyboardMarkup([*_faq_buttons(settings, decision, lookup, skip_current=False),
                                     _label_buttons(settings, decision)])
    guess = candidate_guess(decision)
    if guess is not None:  # one tap confirms the unpromoted candidate's guess (a label correction with it)
        confirm = _button(staff_text(settings, "btn_guess", label=label_name(settings, guess)), decision.id,
                          ButtonAction.LABEL, guess)
        return InlineKeyboardMarkup([[confirm], _label_buttons(settings, decision), _question_button(settings, decision)])
    if decision.kind == MessageKind.REVIEW and decision.label is None:  # no sentiment model yet: ask for the label
        return InlineKeyboardMarkup([_label_buttons(settings, decision), _question_button(settings, decision)])
    return InlineKeyboardMarkup([[_button(staff_text(settings, "btn_ok"), decision.id, ButtonAction.CONFIRM),
                                  _button(staff_text(settings, "btn_no"), decision.id, ButtonAction.CORRECT)]])


def _label_buttons(settings: Settings, decision: Decision) -> list[InlineKeyboardButton]:
    """One button per sentiment: on a review, its label (the current one marked •); on a question,
    "it's a review, with this sentiment"."""
    def text(label: str) -> str:
        if decision.kind == MessageKind.QUESTION:
            return staff_text(settings, "btn_review", emoji=LABEL_EMOJI[label], label=label_name(settings, label))
        return f"{'• ' if label == decision.label else ''}{LABEL_EMOJI[label]} {label_name(settings, label)}"

    return [_button(text(label), decision.id, ButtonAction.LABEL, label) for label in SENTIMENT_LABELS]


def correction_keyboard(settings: Settings, decision: Decision, lookup: QuestionLookup) -> InlineKeyboardMarkup:
    """The buttons after ❌: the right label, or another FAQ entry / a typed answer / "it's a review"."""
    back = [_button(staff_text(settings, "btn_back"), decision.id, ButtonAction.BACK)]
    if decision.kind == MessageKind.REVIEW:
        return InlineKeyboardMarkup([_label_buttons(settings, decision), _question_button(settings, decision), back])
    return InlineKeyboardMarkup([*_faq_buttons(settings, decision, lookup, skip_current=True),
                                 _label_buttons(settings, decision), back])


def answering_keyboard(settings: Settings, decision: Decision) -> InlineKeyboardMarkup:
    """The single button shown while a staff member types an answer."""
    return InlineKeyboardMarkup([[_button(staff_text(settings, "btn_cancel"), decision.id, ButtonAction.CANCEL)]])


def with_outcome(settings: Settings, current_html: str, outcome: str) -> str:
    """The mirror text with its reply hint replaced by one outcome line (`outcome` is plain text)."""
    hints = set()
    for table in STAFF.values():
        for key in ("reply_hint", "contact_hint"):
            hints.update({table[key], html.escape(table[key]), html.escape(table[key], quote=False)})
    lines = [line for line in current_html.rstrip().split("\n") if line not in hints]
    return "\n".join([*lines, f"<b>{html.escape(outcome)}</b>"])


def outcome_confirmed(settings: Settings, name: str) -> str:
    """"✔ confirmed by Mei"."""
    return staff_text(settings, "confirmed", name=name)


def outcome_label(settings: Settings, name: str, old: str | None, new: str) -> str:
    """"✔ corrected by Mei: negative → neutral"."""
    return staff_text(settings, "corrected_label", name=name, old=label_name(settings, old),
                      new=label_name(settings, new))


def outcome_review(settings: Settings, name: str, label: str) -> str:
    """"✔ Mei: a review (negative), the customer got the review reply"."""
    return staff_text(settings, "marked_review", name=name, label=label_name(settings, label))


def outcome_faq(settings: Settings, name: str, key: str, lookup: QuestionLookup) -> str:
    """"✔ corrected by Mei: [opening hours], answer sent"."""
    return staff_text(settings, "corrected_faq", name=name, question=_faq_title(key, lookup))


def outcome_answer(settings: Settings, name: str, answer: str) -> str:
    """"✔ answered by Mei: …"."""
    return staff_text(settings, "answered", name=name, answer=utf16_cut(answer, MAX_ANSWER))
