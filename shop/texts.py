"""Every user-facing string, in Chinese and English, and how a reply language is chosen.

Customer texts are plain text (never parse_mode). Staff and owner texts are HTML: values put
into them must be escaped by the caller (`html.escape`). `{shop}` is filled with the shop's
name in that language.
"""

from __future__ import annotations

from settings import Settings
from storage.text import detect_language

CUSTOMER: dict[str, dict[str, str]] = {
    "zh": {
        "start": ("您好，欢迎来到{shop}！🧋\n"
                  "想问营业时间、价格、外卖，直接发消息问我就好；也欢迎留下您对饮品和服务的评价。\n"
                  "/help 查看帮助 · /forget 删除我保存的您的消息"),
        "help": ("我是{shop}的小助手：\n"
                 "• 直接用文字提问，例如“你们几点开门？”\n"
                 "• 留下评价，我们每一条都会认真看\n"
                 "• 我答不上的问题会转给店员，他们会尽快回复您\n"
                 "• /forget 删除我保存的您的消息\n"
                 "• /optout 不让您的消息用于训练机器人（/optin 恢复）"),
        "handoff": "这个问题我先转给店员，他们会尽快在这里回复您 🙏",
        "thanks_positive": "谢谢您的好评！{shop}期待您再次光临 😊",
        "thanks_neutral": "谢谢您的反馈，我们会继续努力！",
        "sorry_negative": "非常抱歉给您带来不好的体验 🙇 店长已经收到您的反馈，会尽快联系您。",
        "non_text": "收到啦！不过我目前只能看懂文字消息，请用文字告诉我您的问题或评价～",
        "staff_answer": "店员回复：{answer}",
        "better_answer": "补充一个更准确的回答：{answer}",
        "forget_done": "已删除我保存的您的 {messages} 条消息。",
        "forget_kept": "（仅保留了不含您身份信息的匿名标注，用于改进回答。）",
        "forget_nothing": "我这里没有保存您的任何消息。",
        "optout_done": ("好的：您的消息以后不会再用来训练机器人，之前从您的消息得到的训练样本也已删除。"
                        "只有需要店员回答您或跟进您的反馈时，店员才会看到您的消息。/optin 可以恢复。"),
        "optin_done": "好的：您的消息以后可以帮助改进机器人的回答，店员也会照常看到。/optout 可以随时退出。",
        "owner_only": "抱歉，这个命令只有店主可以使用。",
        "error": "抱歉，我这边出了点问题，请稍后再试一次。",
    },
    "en": {
        "start": ("Hi, welcome to {shop}! 🧋\n"
                  "Ask me about opening hours, prices or delivery, or tell us how you liked your drink.\n"
                  "/help for help · /forget to delete the messages I keep from you"),
        "help": ("I'm the {shop} assistant:\n"
                 "• Ask a question in plain words, e.g. \"When do you open?\"\n"
                 "• Leave a review: we read every one\n"
                 "• If I can't answer, I pass your question to our staff and they reply here\n"
                 "• /forget deletes the messages I keep from you\n"
                 "• /optout keeps your messages out of the bot's training (/optin undoes it)"),
        "handoff": "Good question! I've passed it to our staff, and they'll reply here shortly 🙏",
        "thanks_positive": "Thank you for the kind words! See you again at {shop} 😊",
        "thanks_neutral": "Thanks for your feedback, we'll keep improving!",
        "sorry_negative": ("We're really sorry about your experience 🙇 The manager has your message "
                           "and will get back to you soon."),
        "non_text": "Thanks! I can only read text messages for now: please type your question or review.",
        "staff_answer": "From our staff: {answer}",
        "better_answer": "Here is a better answer: {answer}",
        "forget_done": "Done: I deleted the {messages} message(s) I kept from you.",
        "forget_kept": "(Only anonymous labels without anything that identifies you are kept, to improve answers.)",
        "forget_nothing": "I don't keep any messages from you.",
        "optout_done": ("Done: your messages will no longer be used to train the bot, and the training examples "
                        "taken from them are deleted. Staff see your messages only when they need to answer you "
                        "or follow up. /optin undoes this."),
        "optin_done": ("Done: your messages may help improve the bot's answers again, and staff see them as usual. "
                       "/optout stops this at any time."),
        "owner_only": "Sorry, only the shop owner can use this command.",
        "error": "Sorry, something went wrong on my side. Please try again in a moment.",
    },
}

STAFF: dict[str, dict[str, str]] = {
    "zh": {
        "question_answered": "❓ 问题 · 已自动回答 · 置信度 {confidence}",
        "question_memory": "❓ 问题 · 按店员以前的更正回答",
        "question_handoff": "🙋 问题 · 需要店员回答 · 置信度 {confidence}",
        "review": "💬 评价 · {label} · 置信度 {confidence}",
        "review_negative": "🚨 差评 · 请尽快跟进 · 置信度 {confidence}",
        "review_unlabelled": "💬 评价 · 请选择情绪（还没有可用的情绪模型，可能是差评）",
        "from": "来自：{who}（{language}）",
        "bot_answered": "机器人回答了【{question}】：{answer}",
        "guesses": "最接近的常见问题：{guesses}",
        "reply_hint": "↩ 回复这条消息即可把您的回答发给顾客。",
        "contact_hint": "↩ 点上面的名字私聊顾客，或回复这条消息让机器人转达。",
        "deleted_message": "（顾客已要求删除这条消息）",
        "forgotten_mirror": "🗑 顾客已要求删除自己的消息，这里的内容已移除。",
        "btn_ok": "✅ 正确",
        "btn_no": "❌ 不对",
        "btn_write": "✍ 自己写回答",
        "btn_back": "↩ 返回",
        "btn_cancel": "✖ 取消",
        "confirmed": "✔ {name} 确认正确",
        "corrected_label": "✔ {name} 已更正：{old} → {new}",
        "corrected_faq": "✔ {name} 已更正为【{question}】，答案已发给顾客",
        "answered": "✔ {name} 已回答顾客：{answer}",
        "answered_undelivered": "⚠ {name} 的回答已保存，但没能发给顾客：{problem}",
        "customer_gone": "⚠ 顾客已要求删除消息，无法再回复。",
        "relayed": "✔ 已转达给顾客。",
        "write_prompt": "✍ {name}，请直接输入给顾客的回答（/cancel 取消，{minutes} 分钟内有效）：",
        "write_timeout": "⌛ {name} 在 {minutes} 分钟内没有输入回答，已取消。需要时请再按 ✍。",
        "write_cancelled": "已取消。",
        "write_empty": "回答不能为空，请重新输入，或 /cancel 取消。",
        "not_allowed": "抱歉，只有店员可以操作这些按钮。",
        "stale": "这个按钮已经过期了，请使用最新的消息。",
        "forged": "无法识别这个按钮。",
        "unknown_decision": "找不到这条记录（可能已被删除）。",
        "wrong_message": "这个按钮不属于这条消息。",
        "already_done": "这条已经处理过了。",
        "not_applicable": "这个操作不适用于这条消息。",
        "faq_missing": "这个常见问题已经不存在了。",
        "customer_blocked": "顾客已屏蔽机器人，在他们重新发消息之前什么都发不过去",
        "too_old": "这条消息太旧了，按钮已不能使用，什么都没有改动。",
        "prompt_failed": "⚠ 没能在这里请您输入回答：{problem}。按钮保持不变：请再按 ✍，或直接回复那条消息。",
        "pick_label": "请选择正确的情绪：",
        "btn_review": "{emoji} 是评价·{label}",
        "btn_write_question": "✍ 其实是问题：写回答",
        "marked_review": "✔ {name} 标为评价（{label}），已回复顾客",
        "saved": "已保存 ✔",
        "error_notice": "⚠ 机器人出错了：{error}（详情见日志）",
        "positive": "正面",
        "neutral": "中性",
        "negative": "负面",
    },
    "en": {
        "question_answered": "❓ Question · answered · confidence {confidence}",
        "question_memory": "❓ Question · answered from an earlier staff correction",
        "question_handoff": "🙋 Question for staff · confidence {confidence}",
        "review": "💬 Review · {label} · confidence {confidence}",
        "review_negative": "🚨 Negative review · please follow up · confidence {confidence}",
        "review_unlabelled": "💬 Review · pick its sentiment (no sentiment model yet: it may be a complaint)",
        "from": "From: {who} ({language})",
        "bot_answered": "Bot answered [{question}]: {answer}",
        "guesses": "Closest FAQ entries: {guesses}",
        "reply_hint": "↩ Reply to this message and I'll send your answer to the customer.",
        "contact_hint": "↩ Tap the name to write to them, or reply to this message and I'll pass it on.",
        "deleted_message": "(deleted at the customer's request)",
        "forgotten_mirror": "🗑 Removed: the customer asked us to delete their messages.",
        "btn_ok": "✅ correct",
        "btn_no": "❌ incorrect",
        "btn_write": "✍ write the answer",
        "btn_back": "↩ back",
        "btn_cancel": "✖ cancel",
        "confirmed": "✔ confirmed by {name}",
        "corrected_label": "✔ corrected by {name}: {old} → {new}",
        "corrected_faq": "✔ corrected by {name}: [{question}], answer sent to the customer",
        "answered": "✔ answered by {name}: {answer}",
        "answered_undelivered": "⚠ {name}'s answer is saved but could not be delivered: {problem}",
        "customer_gone": "⚠ The customer asked us to delete their messages; they can't be answered any more.",
        "relayed": "✔ Sent to the customer.",
        "write_prompt": "✍ {name}, type the answer for the customer (/cancel to stop; open for {minutes} min):",
        "write_timeout": "⌛ No answer from {name} within {minutes} min, cancelled. Press ✍ again when ready.",
        "write_cancelled": "Cancelled.",
        "write_empty": "The answer can't be empty: type it again, or /cancel.",
        "not_allowed": "Sorry, only staff can use these buttons.",
        "stale": "This button is out of date; please use the latest message.",
        "forged": "This button isn't recognised.",
        "unknown_decision": "I can't find this item any more (it may have been deleted).",
        "wrong_message": "This button doesn't belong to this message.",
        "already_done": "This one has already been handled.",
        "not_applicable": "That action doesn't apply to this message.",
        "faq_missing": "That FAQ entry no longer exists.",
        "customer_blocked": "the customer has blocked the bot; nothing reaches them until they write to it again",
        "too_old": "This message is too old for its buttons, so nothing was changed.",
        "prompt_failed": "⚠ I couldn't ask for the answer here: {problem}. The buttons are unchanged: press ✍ again, "
                         "or reply to the message.",
        "pick_label": "Pick the right sentiment:",
        "btn_review": "{emoji} review: {label}",
        "btn_write_question": "✍ a question: write the answer",
        "marked_review": "✔ {name}: a review ({label}), the customer got the review reply",
        "saved": "Saved ✔",
        "error_notice": "⚠ The bot hit an error: {error} (details in the log)",
        "positive": "positive",
        "neutral": "neutral",
        "negative": "negative",
    },
}

OWNER: dict[str, dict[str, str]] = {
    "zh": {
        "status_title": "📊 {shop} 机器人状态",
        "status_adapter": "• {task}：{version}{metrics}",
        "status_base": "• {task}：基础模型（还没有训练好的版本）",
        "status_refused": "   最近的候选 {version} 未启用：准确率 {estimate}。原因：{reasons}",
        "status_serving": "正在使用：{version}",
        "status_corrections": "上次训练（{when}）以来的店员更正：{count} 条",
        "status_corrections_never": "还没有训练过；店员更正共 {count} 条",
        "status_next": "下次自动训练：{when}",
        "status_training": "⏳ 正在训练中…",
        "retrain_started": "⏳ 开始训练，完成后我会告诉您（通常需要几分钟）。",
        "retrain_busy": "已经在训练了，请等它完成。",
        "retrain_done": "训练结束：{status}",
        "retrain_promoted": "已启用新模型：{version}",
        "rollback_done": "• {task}：已回滚到 {version}",
        "rollback_nothing": "• {task}：没有可以回滚的版本（{problem}）",
        "rollback_usage": "用法：/rollback [sentiment|faq]（不填则两个都回滚）",
        "rollback_serving": "正在使用：{version}",
        "report_unavailable": "暂时无法生成报告：{problem}",
        "sentiment": "情绪模型",
        "faq": "问答模型",
        "report_title": "📈 {shop} 周报：{start} – {end}",
        "report_questions": "问题：{total} 个，自动回答 {answered} 个（{rate}），转给店员 {handoff} 个",
        "report_reviews": "评价：{total} 条 · 😊 {positive} · 😐 {neutral} · 😞 {negative}",
        "report_feedback": "店员检查：确认 {confirm} 次，更正 {corrected} 次（情绪 {label} · 换问答 {faq} · 自己回答 {answer}）",
        "report_precision": "被检查的决定中机器人答对：{rate}",
        "report_examples": "本周新增的训练样本：{count} 条",
        "report_models": "模型：",
    },
    "en": {
        "status_title": "📊 {shop} bot status",
        "status_adapter": "• {task}: {version}{metrics}",
        "status_base": "• {task}: base model (no trained version yet)",
        "status_refused": "   latest candidate {version} refused: accuracy {estimate}. Why: {reasons}",
        "status_serving": "Serving: {version}",
        "status_corrections": "Staff corrections since the last retrain ({when}): {count}",
        "status_corrections_never": "Never retrained yet; staff corrections so far: {count}",
        "status_next": "Next scheduled retrain: {when}",
        "status_training": "⏳ A retrain is running…",
        "retrain_started": "⏳ Retraining started; I'll tell you when it's done (usually a few minutes).",
        "retrain_busy": "A retrain is already running; please wait for it to finish.",
        "retrain_done": "Retrain finished: {status}",
        "retrain_promoted": "Now serving: {version}",
        "rollback_done": "• {task}: rolled back to {version}",
        "rollback_nothing": "• {task}: nothing to roll back ({problem})",
        "rollback_usage": "Usage: /rollback [sentiment|faq] (no argument: both)",
        "rollback_serving": "Serving: {version}",
        "report_unavailable": "The report can't be built right now: {problem}",
        "sentiment": "sentiment model",
        "faq": "FAQ model",
        "report_title": "📈 {shop} weekly report: {start} – {end}",
        "report_questions": "Questions: {total}, answered by the bot {answered} ({rate}), handed to staff {handoff}",
        "report_reviews": "Reviews: {total} · 😊 {positive} · 😐 {neutral} · 😞 {negative}",
        "report_feedback": ("Staff checks: {confirm} confirmed, {corrected} corrected (sentiment {label} · "
                            "other FAQ {faq} · own answer {answer})"),
        "report_precision": "Bot right in checked decisions: {rate}",
        "report_examples": "New training examples this week: {count}",
        "report_models": "Models:",
    },
}

COMMANDS: dict[str, dict[str, str]] = {
    "zh": {"start": "开始", "help": "帮助", "forget": "删除我保存的您的消息", "optout": "不让我的消息用于训练",
           "optin": "允许我的消息用于改进回答", "status": "机器人状态（店主）",
           "retrain": "立即重新训练（店主）", "rollback": "回滚到上一个模型（店主）", "report": "本周报告（店主）",
           "cancel": "取消正在写的回答（店员）"},
    "en": {"start": "Start", "help": "Help", "forget": "Delete the messages the bot keeps from you",
           "optout": "Keep my messages out of the bot's training", "optin": "Let my messages improve the bot",
           "status": "Bot status (owner)", "retrain": "Retrain now (owner)",
           "rollback": "Roll back to the previous model (owner)", "report": "This week's report (owner)",
           "cancel": "Cancel the answer you are writing (staff)"},
}


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
                  stored: str | None = None) -> str:
    """The reply language: the message's own language, else Telegram's language_code, else stored, else default.

    A customer whose phone is set to English but who writes 你们几点开门 gets Chinese: the
    words they typed are the stronger signal. Commands and stickers pass no text.
    """
    for candidate in (text_language(text), language_from_code(language_code), stored):
        if (chosen := _supported(settings, candidate)) is not None:
            return chosen
    return settings.default_language


def customer_text(settings: Settings, language: str, key: str, **values: object) -> str:
    """A customer-facing string in `language`, with {shop} filled in."""
    table = CUSTOMER.get(language, CUSTOMER["en"])
    return table[key].format(shop=shop_name(settings, language), **values)


def staff_text(settings: Settings, key: str, **values: object) -> str:
    """A staff-chat string in the shop's default language (HTML: escape the values)."""
    language = settings.default_language
    return STAFF.get(language, STAFF["en"])[key].format(**values)


_REVIEW_REPLY = {"positive": "thanks_positive", "neutral": "thanks_neutral", "negative": "sorry_negative"}


def review_reply(settings: Settings, language: str, label: str | None) -> str:
    """What a customer is told after a review with this sentiment (unknown: the neutral thanks)."""
    return customer_text(settings, language, _REVIEW_REPLY.get(label or "", "thanks_neutral"))


def label_name(settings: Settings, label: str | None) -> str:
    """A sentiment label as staff read it."""
    if label in ("positive", "neutral", "negative"):
        return staff_text(settings, label)
    return label or "?"


def owner_text(settings: Settings, language: str, key: str, **values: object) -> str:
    """An owner-facing string (HTML: escape the values)."""
    table = OWNER.get(language, OWNER["en"])
    return table[key].format(shop=shop_name(settings, language), **values)
