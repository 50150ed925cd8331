"""Stand-ins for Telegram, not the bot: the Bot API emulator, the local web sandbox and the terminal chat."""
