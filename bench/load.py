"""Sustained customer traffic through the real bot stack (PTB + handlers + SQLite + model) and the loopback emulator.

    python bench/load.py [--seconds 60] [--customers 32] [--no-mirror]

Each simulated customer sends a message, waits for the bot's reply, and sends the next one.
Reports replies per second and reply latency percentiles; every decision is also mirrored to the
staff chat unless --no-mirror. Telegram's own flood limits are off (the emulator is not Telegram;
in production AIORateLimiter paces outgoing messages). The model is the real base with both task
heads, int8 trunk, one torch thread, as served.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from pathlib import Path

import common  # noqa: F401
import numpy as np

from bot.app import build_application, running
from bot.emulator import BotAPIEmulator, FakeUser
from common import REPO, base_folder, peak_rss_mb, save
from latency import MESSAGES, build
from settings import settings_from_dict
from storage.seed import load_demo
from storage.store import Store
from training.encoder import Encoder
from training.runtime import ModelRuntime

STAFF_CHAT = -1001


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--customers", type=int, default=32)
    parser.add_argument("--no-mirror", action="store_true")
    parser.add_argument("--base", default=None)
    args = parser.parse_args()
    base = base_folder(args.base)
    with tempfile.TemporaryDirectory() as tmp, BotAPIEmulator() as emulator:
        settings = settings_from_dict({
            "model": {"base": str(base)},
            "roles": {"staff_ids": [9], "staff_chat_id": 0 if args.no_mirror else STAFF_CHAT},
            "thresholds": {"answer_confidence": 0.0},
        }, Path(tmp), env={"TELEGRAM_BOT_TOKEN": emulator.token})
        with Store(settings.paths.database) as store:
            load_demo(store, REPO / "data" / "demo")
        encoder = Encoder(base, settings.model.top_layers, quantize=True)

        def runtime_factory(_settings):
            return ModelRuntime(build(encoder, 1), answer_threshold=0.0)

        app = build_application(settings, base_url=emulator.base_url, base_file_url=emulator.base_file_url,
                                runtime_factory=runtime_factory, flood_limits=False)
        ready, done = threading.Event(), threading.Event()

        async def serve() -> None:
            async with running(app):
                ready.set()
                while not done.is_set():
                    await asyncio.sleep(0.05)

        server = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
        server.start()
        ready.wait(120)
        latencies: list[float] = []
        lost = [0]
        lock = threading.Lock()
        deadline = time.monotonic() + args.seconds

        def customer(n: int) -> None:
            user = FakeUser(100_000 + n, f"c{n}", "zh" if n % 2 else "en")
            i = 0
            while time.monotonic() < deadline:
                sent = emulator.send_text(user, MESSAGES[(n + i) % len(MESSAGES)])
                started = time.perf_counter()
                try:
                    emulator.wait_for_message(user.id, after=sent["message_id"], timeout=30)
                except TimeoutError:
                    with lock:
                        lost[0] += 1
                    continue
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)
                i += 1

        started = time.perf_counter()
        workers = [threading.Thread(target=customer, args=(n,)) for n in range(args.customers)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - started
        done.set()
        server.join(30)
        mirrors = len(emulator.messages(STAFF_CHAT))
    save("load", {
        "customers": args.customers, "seconds": round(elapsed, 1), "replies": len(latencies), "lost": lost[0],
        "messages_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(float(np.percentile(latencies, 99)), 1) if latencies else None,
        "staff_mirrors": mirrors, "peak_rss_mb": round(peak_rss_mb(), 1),
    })


if __name__ == "__main__":
    main()
