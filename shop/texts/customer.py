"""What customers read (plain text, never parse_mode), in Chinese and English; `{shop}` is the shop's name."""

from __future__ import annotations

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
        "suggest_prompt": "我不太确定您问的是哪一个，是下面其中一个吗？",
        "suggest_none": "都不是，问店员",
        "suggest_gone": "抱歉，这个问题已经不在了。我把您的问题转给店员，他们会尽快回复您 🙏",
        "rate_up": "👍 有帮助",
        "rate_down": "👎 没帮助",
        "rate_thanks_up": "谢谢！很高兴帮到您 😊",
        "rate_thanks_down": "抱歉没帮上忙，我已经请店员看一下这个回答 🙏",
        "rate_same": "已经收到您的评价啦。",
        "rate_final": "您已经改过一次评价了，这次的评价就是最终的。",
        "press_not_yours": "这个按钮不是给您的。",
        "press_stale": "这个按钮已经用过或过期了。",
        "press_forged": "无法识别这个按钮。",
        "handoff_closed": "这个问题我先转给店员。现在店里已打烊，店员{when}回复您 🙏",
        "when_today": "今天{time}",
        "when_tomorrow": "明天{time}",
        "when_day": "{day}{time}",
        "weekdays": "周一,周二,周三,周四,周五,周六,周日",
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
        "suggest_prompt": "I'm not sure which one you mean. Is it one of these?",
        "suggest_none": "None of these, ask staff",
        "suggest_gone": "Sorry, that question is gone. I've passed yours to our staff, and they'll reply here shortly 🙏",
        "rate_up": "👍 Helpful",
        "rate_down": "👎 Not helpful",
        "rate_thanks_up": "Thanks! Glad it helped 😊",
        "rate_thanks_down": "Sorry it didn't help: I've asked our staff to check this answer 🙏",
        "rate_same": "Got it, your rating is already in.",
        "rate_final": "You've changed your rating once already: it's final now.",
        "press_not_yours": "This button isn't for you.",
        "press_stale": "This button has been used already or is out of date.",
        "press_forged": "I don't recognise this button.",
        "handoff_closed": "Good question! I've passed it to our staff. We're closed right now: they'll reply here {when} 🙏",
        "when_today": "today at {time}",
        "when_tomorrow": "tomorrow at {time}",
        "when_day": "on {day} at {time}",
        "weekdays": "Monday,Tuesday,Wednesday,Thursday,Friday,Saturday,Sunday",
    },
}
