"""What the shop does, without Telegram: staff feedback, retraining, the owner report and every user-facing text."""
