"""The Telegram side of shopbot: wiring, handlers by feature, jobs, texts, the CLI and the local emulator."""
