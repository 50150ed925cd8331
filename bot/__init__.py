"""The Telegram side of shopbot: wiring, handlers by feature, the staff-chat view, scheduled jobs."""
