"""The descriptions of the bot's commands in Telegram's command menu, per language."""

from __future__ import annotations

COMMANDS: dict[str, dict[str, str]] = {
    "zh": {"start": "开始", "help": "帮助", "forget": "删除我保存的您的消息", "optout": "不让我的消息用于训练",
           "optin": "允许我的消息用于改进回答", "status": "机器人状态（店主）",
           "retrain": "立即重新训练（店主）", "rollback": "回滚到上一个模型（店主）", "report": "本周报告（店主）",
           "faq": "查看和修改问答（店主）",
           "cancel": "取消正在写的回答（店员）",
           "review": "查看最值得看的机器人判断（店员）", "resume": "恢复机器人对某位顾客的回复（店员）"},
    "en": {"start": "Start", "help": "Help", "forget": "Delete the messages the bot keeps from you",
           "optout": "Keep my messages out of the bot's training", "optin": "Let my messages improve the bot",
           "status": "Bot status (owner)", "retrain": "Retrain now (owner)",
           "rollback": "Roll back to the previous model (owner)", "report": "This week's report (owner)",
           "faq": "See and edit the FAQ (owner)",
           "cancel": "Cancel the answer you are writing (staff)",
           "review": "The bot decisions most worth a look (staff)", "resume": "Let the bot answer a customer again (staff)"},
}
