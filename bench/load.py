"""Sustained customer traffic through the real bot stack (PTB + handlers + SQLite + model) and the loopback emulator.

    python bench/load.py [--seconds 60] [--customers 32] [--no-mirror] [--same-process]

Each simulated customer sends a message, waits for the bot's reply, and sends the next one.
Reports replies per second and reply latency percentiles; every decision is also mirrored to the
staff chat unless --no-mirror. Telegram's own flood limits are off (the emulator is not Telegram;
in production AIORateLimiter paces outgoing messages). The model is the real base with both task
heads, int8 trunk, one torch thread, as served.

The bot runs in its own process, as in production, where Telegram is another machine: the
emulator and the customer threads stay here, so their Python work does not share the bot's
interpreter lock. --same-process runs everything in one interpreter (the old set-up, which
measures the harness as much as the bot).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path

import common  # noqa: F401
import numpy as np
from common import REPO, base_folder, peak_rss_mb, save
from latency import MESSAGES, build

from bot.app import build_application, running
from sandbox.emulator import BotAPIEmulator, FakeUser
from serving.runtime import ModelRuntime
from settings import settings_from_dict
from storage.seed import load_demo
from storage.store import Store
from training.encoder import load_encoder

STAFF_CHAT = -1001


def serve_bot(workdir: str, base: str, mirror: bool, base_url: str, base_file_url: str, token: str,
              ready, stop) -> None:  # multiprocessing events
    """Run the bot (real stack, benchmark model) until `stop` is set; `ready` once it polls."""
    settings = settings_from_dict({
        "model": {"base": base},
        "roles": {"staff_ids": [9], "staff_chat_id": STAFF_CHAT if mirror else 0},
        "thresholds": {"answer_confidence": 0.0},
        "telegram": {"api_url": base_url, "file_url": base_file_url},
    }, Path(workdir), env={"TELEGRAM_BOT_TOKEN": token})
    encoder = load_encoder(settings)

    def runtime_factory(_settings):
        return ModelRuntime(build(encoder, 1), answer_threshold=0.0)

    app = build_application(settings, runtime_factory=runtime_factory, flood_limits=False)

    async def serve() -> None:
        async with running(app):
            ready.set()
            await asyncio.to_thread(stop.wait)

    asyncio.run(serve())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--customers", type=int, default=32)
    parser.add_argument("--no-mirror", action="store_true")
    parser.add_argument("--same-process", action="store_true", help="run the bot in this interpreter too")
    parser.add_argument("--base", default=None)
    args = parser.parse_args()
    base = base_folder(args.base)
    # Flood limits off, here and in the bot: these customers write again as soon as they are answered
    # (several messages/s per chat, every mirror to one group), far over Telegram's limits, to measure the bot.
    with tempfile.TemporaryDirectory() as tmp, BotAPIEmulator(flood_limits=False) as emulator:
        emulator.add_chat(STAFF_CHAT)
        with Store(Path(tmp) / "var" / "shopbot.db") as store:
            load_demo(store, REPO / "data" / "demo")
        bot_args = (tmp, str(base), not args.no_mirror, emulator.base_url, emulator.base_file_url, emulator.token)
        if args.same_process:
            ready, stop = threading.Event(), threading.Event()
            server = threading.Thread(target=serve_bot, args=(*bot_args, ready, stop), daemon=True)
        else:
            spawn = multiprocessing.get_context("spawn")
            ready, stop = spawn.Event(), spawn.Event()
            server = spawn.Process(target=serve_bot, args=(*bot_args, ready, stop), daemon=True)
        server.start()
        if not ready.wait(180):
            raise SystemExit("the bot did not start within 180 s")
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
        stop.set()
        server.join(30)
        mirrors = len(emulator.messages(STAFF_CHAT))
    if args.same_process:
        rss, bot_cpu = peak_rss_mb(), None
    else:  # the bot process's own CPU time: what it would need on dedicated cores
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        rss, bot_cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
    save("load", {
        "customers": args.customers, "seconds": round(elapsed, 1), "replies": len(latencies), "lost": lost[0],
        "messages_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(float(np.percentile(latencies, 99)), 1) if latencies else None,
        "staff_mirrors": mirrors, "bot_process": not args.same_process, "bot_peak_rss_mb": round(rss, 1),
        "bot_cpu_seconds": None if bot_cpu is None else round(bot_cpu, 1),
        "bot_cpu_ms_per_message": round(1000 * bot_cpu / len(latencies), 2) if bot_cpu and latencies else None,
    })


if __name__ == "__main__":
    main()
