"""Sustained customer traffic through the real bot stack (PTB + handlers + SQLite + model) and the loopback emulator.

    python bench/load.py [--seconds 60] [--customers 32] [--mirror all|policy|off] [--model real|shipped|fake]
                         [--workers N] [--max-batch N] [--batch-wait-ms MS] [--profile] [--tag NAME]

Each simulated customer sends a message, waits for the bot's reply, and sends the next one.
Reported: replies per second, reply latency p50/p99, and the bot process's CPU time per message,
read from /proc/<bot pid>/stat (utime + stime, all its threads) over the measured window only
(after a warm-up; start-up and model loading excluded). Then a lone customer writes `--lone`
messages one at a time on the idle bot: the latency a single message sees (batching must not
delay it).

The bot runs in its own process, as in production, where Telegram is another machine: the
emulator and the customer threads stay here. Telegram's flood limits are off in both (these
customers write several messages/s per chat). The emulator keeps HTTP/1.1 connections alive
between calls, as Telegram does (`--one-call-per-connection`: the tests' HTTP/1.0, where every
call opens a new connection). The mirror policy is `[staff] mirror` (default
"all", the product's; "off" = no staff chat); `--mirror policy` keeps its `sample_rate`.

`--model real` (default): the product's own loader and runtime (`[model] runtime`: ONNX Runtime on a
CPU) serving a promoted sentiment and FAQ adapter with random LoRA weights (`bench/swap.py:
publish_set`: the shapes and cost of trained ones, the sentiment one with its n-gram blend), the demo shop's FAQ as the index, so questions
are answered from the demo FAQ and reviews get a sentiment. `--model shipped`: the product's own loader on the demo shop as shipped (no
adapter has passed the gate: the FAQ by the base model, reviews left for staff to label, so
mirrored under either policy), whatever runtime `[model] runtime` picks. `--model fake`: a constant-time stand-in that returns the same kinds of decisions
without a model: what the bot costs outside the model. `--profile` samples the bot process with
py-spy during the measured window and saves the top functions (bench/results/load-profile[-TAG].txt).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import common  # noqa: F401
import numpy as np
from common import REPO, RESULTS, base_folder, save

from sandbox.emulator import BotAPIEmulator, FakeUser
from settings import StaffSettings, settings_from_dict
from storage.seed import load_demo
from storage.store import Store

STAFF_CHAT = -1001
MESSAGES = ["能做少糖吗?", "do you deliver to the university?", "珍珠太硬了，下次不来了", "not bad but pricey",
            "你们几点关门", "the brown sugar milk is amazing!!", "可以用支付宝吗", "waited 25 minutes for one drink"]


class FakeRuntime:
    """No model: the bench's questions get the demo FAQ's first entry, its reviews a sentiment by their length."""

    QUESTIONS = frozenset(MESSAGES[i] for i in (0, 1, 4, 6))

    def __init__(self, faq_key: str) -> None:
        from types import SimpleNamespace

        from serving.memory import CorrectionMemory
        from serving.prediction import Prediction
        from vocabulary import MessageKind

        self.memory = CorrectionMemory()
        self.serving = SimpleNamespace(version="fake", versions={}, encoder=None)
        question = Prediction(MessageKind.QUESTION, faq_key, 0.9, True, ((faq_key, 0.9), ("other", 0.05)),
                              question_probability=0.8)
        labels = ("positive", "neutral", "negative")
        self.decisions = {text: question if text in self.QUESTIONS else Prediction(
            MessageKind.REVIEW, labels[len(text) % 3], 0.8, False,
            tuple((label, 0.8 if label == labels[len(text) % 3] else 0.1) for label in labels),
            question_probability=0.2) for text in MESSAGES}

    def decide(self, text: str):
        return self.decisions[text]

    def decide_batch(self, texts):
        return [self.decisions[text] for text in texts]

    def remember(self, text, kind, label) -> None:
        self.memory.add(text, kind, label)


def publish_adapters(settings) -> dict[str, str]:
    """Promote a sentiment and an FAQ adapter with random (seeded) LoRA weights into the shop (`bench/swap.py:
    publish_set`, exported as training does): the bot then loads them with the product's own loader."""
    from swap import publish_set

    from training.encoder import load_encoder
    from training.registry import AdapterRegistry

    with Store(settings.paths.database) as store:
        registry = AdapterRegistry(settings.paths.adapters, store)
        versions = publish_set(registry, load_encoder(settings), "load", 1, str(settings.model.base))
        for version in versions.values():
            registry.promote(version, ["bench: load"])
    return versions


def bot_settings(workdir: str, base: str, mirror: str, bot: dict, telegram: dict, token: str):
    data = {
        "model": {"base": base},
        "roles": {"staff_ids": [9], "staff_chat_id": 0 if mirror == "off" else STAFF_CHAT},
        "thresholds": {"answer_confidence": 0.0, "suggestions": 0},  # every question answered: no "did you mean…?"
        "staff": {} if mirror in ("off", "all") else {"mirror": mirror},
        "telegram": telegram,
    }
    if bot:
        data["bot"] = bot
    return settings_from_dict(data, Path(workdir), env={"TELEGRAM_BOT_TOKEN": token})


def bot_memory_mb(pid: int) -> dict[str, Any]:
    """The bot process's resident memory now and at its peak (/proc/<pid>/status), and whether torch is mapped in."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {key: round(int(status[key].split()[0]) / 1024, 1) for key in ("VmRSS", "VmHWM")} | {
        "torch": "libtorch" in maps}


def serve_bot(settings, model: str, ready, stop, stats) -> None:  # multiprocessing events and a queue
    """Run the bot (real stack, benchmark model) until `stop` is set; `ready` once it polls; the batcher's counts
    (batches, messages) into `stats` at `ready` and at the end."""
    import logging

    from bot.app import build_application, running

    logging.basicConfig(level=logging.WARNING)
    factory = None  # "shipped": the product's own loader (bot.services.load_runtime_for)
    if model == "fake":
        with Store(settings.paths.database) as store:
            key = store.faq.all()[0].key

        def factory(_settings):
            return FakeRuntime(key)
    app = build_application(settings, runtime_factory=factory, flood_limits=False)

    async def serve() -> None:
        async with running(app):
            batcher = app.bot_data.services.batcher
            ready.set()
            await asyncio.to_thread(stop.wait)
            stats.put((batcher.batches, batcher.batched))

    asyncio.run(serve())


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Where the bot's time goes, by the code a sample's stack passes through (first match wins, in this order).
PARTS = (("model (serving/, training/, torch)", ("serving/", "training/", "torch/", "transformers/")),
         ("SQLite (storage/)", ("storage/", "sqlite_utils/")),
         ("HTTP client (httpx, httpcore, h11, anyio)", ("httpx/", "httpcore/", "h11/", "anyio/")),
         ("handlers and the rest of bot/, shop/", ("bot/", "shop/")))


def _part(stack: str) -> str:
    for name, paths in PARTS:
        if any(f"({path}" in stack or f"/{path}" in stack for path in paths):
            return name
    return "other (PTB, asyncio, threads)"


def profile_summary(raw: Path, top: int = 30) -> str:
    """Shares by part (PARTS), top functions by own samples and by inclusive samples, from py-spy's raw
    (collapsed stacks) output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        parts[_part(stack)] += n
        frames = [frame.split(" (")[0] + " (" + frame.split(" (")[1].split(":")[0] + ")" if " (" in frame else frame
                  for frame in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"{total} samples (bot process, all threads, idle excluded)", "", "by part:"]
    lines += [f"{100 * n / total:6.1f}%  {name}" for name, n in parts.most_common()]
    lines += ["", f"top {top} by own samples:"]
    lines += [f"{100 * n / total:6.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", f"top {top} by inclusive samples:"]
    lines += [f"{100 * n / total:6.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="measured window")
    parser.add_argument("--warmup", type=float, default=5, help="traffic before the measured window")
    parser.add_argument("--customers", type=int, default=32)
    parser.add_argument("--mirror", choices=("all", "policy", "off"), default=StaffSettings().mirror)
    parser.add_argument("--model", choices=("real", "shipped", "fake"), default="real")
    parser.add_argument("--max-batch", type=int, default=None, help="override: bot.max_batch (1 = no batching)")
    parser.add_argument("--workers", type=int, default=None, help="override: bot.model_workers")
    parser.add_argument("--batch-wait-ms", type=float, default=None, help="override: bot.batch_wait_ms")
    parser.add_argument("--lone", type=int, default=30, help="single messages timed on the idle bot afterwards")
    parser.add_argument("--one-call-per-connection", action="store_true",
                        help="the emulator closes every connection after one call (HTTP/1.0: the old set-up)")
    parser.add_argument("--profile", action="store_true", help="py-spy the bot during the measured window")
    parser.add_argument("--tag", default="", help="suffix of the result file names")
    parser.add_argument("--base", default=None)
    args = parser.parse_args()
    bot = {k: v for k, v in (("max_batch", args.max_batch), ("model_workers", args.workers),
                              ("batch_wait_ms", args.batch_wait_ms)) if v is not None}
    overrides = {f"bot.{k}": v for k, v in bot.items()}
    if args.mirror != StaffSettings().mirror:
        overrides["staff.mirror"] = args.mirror
    overrides |= {"thresholds.answer_confidence": 0.0, "thresholds.suggestions": 0}
    http = "HTTP/1.0, one call per connection" if args.one_call_per_connection else "HTTP/1.1 keep-alive"
    print(f"mirror policy: {args.mirror}; model: {args.model}; emulator: {http}; overrides: {overrides}", flush=True)
    base = base_folder(args.base)
    tag = f"-{args.tag}" if args.tag else ""
    with tempfile.TemporaryDirectory() as tmp, BotAPIEmulator(
            flood_limits=False, keep_alive=not args.one_call_per_connection) as emulator:
        emulator.add_chat(STAFF_CHAT)
        telegram = {"api_url": emulator.base_url, "file_url": emulator.base_file_url}
        settings = bot_settings(tmp, str(base), args.mirror, bot, telegram, emulator.token)
        with Store(settings.paths.database) as store:
            load_demo(store, REPO / "data" / "demo")
        if args.model == "real":
            print(f"adapters (random weights, real shapes): {publish_adapters(settings)}", flush=True)
        spawn = multiprocessing.get_context("spawn")
        ready, stop, stats = spawn.Event(), spawn.Event(), spawn.Queue()
        server = spawn.Process(target=serve_bot, args=(settings, args.model, ready, stop, stats))  # not a daemon: it may start
        # the child that builds the base's ONNX graphs
        server.start()
        started_at = time.monotonic()
        while not ready.wait(1):
            if not server.is_alive() or time.monotonic() - started_at > 300:
                raise SystemExit("the bot did not start (within 300 s)")
        if server.pid is None:
            raise SystemExit("the bot process has no pid")
        pid = server.pid
        replies: list[tuple[float, float]] = []  # (done at, latency ms)
        lost = [0]
        lock = threading.Lock()
        begin = time.monotonic()
        window = (begin + args.warmup, begin + args.warmup + args.seconds)

        def customer(n: int) -> None:
            user = FakeUser(100_000 + n, f"c{n}", "zh" if n % 2 else "en")
            i = 0
            while time.monotonic() < window[1]:
                sent = emulator.send_text(user, MESSAGES[(n + i) % len(MESSAGES)])
                started = time.monotonic()
                try:
                    emulator.wait_for_message(user.id, after=sent["message_id"], timeout=30)
                except TimeoutError:
                    with lock:
                        lost[0] += 1
                    continue
                done = time.monotonic()
                with lock:
                    replies.append((done, (done - started) * 1000))
                i += 1

        workers = [threading.Thread(target=customer, args=(n,)) for n in range(args.customers)]
        for w in workers:
            w.start()
        time.sleep(max(0.0, window[0] - time.monotonic()))
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        spy = None
        raw = Path(tmp) / "profile.txt"
        if args.profile:
            spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
                                    "--duration", str(int(args.seconds)), "--rate", "200", "--nonblocking",
                                    "--format", "raw", "--output", str(raw)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(max(0.0, window[1] - time.monotonic()))
        cpu1, t1 = cpu_seconds(pid), time.monotonic()
        for w in workers:
            w.join()
        if spy is not None:
            _, spy_err = spy.communicate(timeout=60)
            if spy.returncode or not raw.exists():
                print(f"py-spy failed ({spy.returncode}): {spy_err.strip()[-500:]}", flush=True)
            else:
                summary = profile_summary(raw)
                (RESULTS / f"load-profile{tag}.txt").write_text(
                    f"bench/load.py {' '.join(sys.argv[1:])}\n{summary}", encoding="utf-8")
                print(summary, flush=True)
        time.sleep(1.0)  # the last mirrors settle; then one customer alone
        lone_user = FakeUser(99_999, "lone", "en")
        lone = []
        for i in range(args.lone):
            sent = emulator.send_text(lone_user, MESSAGES[i % len(MESSAGES)])
            started = time.monotonic()
            emulator.wait_for_message(lone_user.id, after=sent["message_id"], timeout=30)
            lone.append((time.monotonic() - started) * 1000)
            time.sleep(0.1)
        memory = bot_memory_mb(pid)
        stop.set()
        batches, batched = stats.get(timeout=60)
        server.join(60)
        mirrors = len(emulator.messages(STAFF_CHAT))
    measured = [ms for done, ms in replies if t0 <= done <= t1]
    cpu = cpu1 - cpu0
    load = os.getloadavg()
    save(f"load{tag}", {
        "customers": args.customers, "model": args.model, "mirror": args.mirror, "overrides": overrides,
        "emulator_http": http,
        "window_seconds": round(t1 - t0, 1), "replies": len(measured), "lost": lost[0],
        "messages_per_second": round(len(measured) / (t1 - t0), 1),
        "p50_ms": round(statistics.median(measured), 1) if measured else None,
        "p99_ms": round(float(np.percentile(measured, 99)), 1) if measured else None,
        "lone_p50_ms": round(statistics.median(lone), 1) if lone else None,
        "lone_p99_ms": round(float(np.percentile(lone, 99)), 1) if lone else None,
        "staff_mirrors_total": mirrors, "model_batches": batches,
        "mean_batch": round(batched / batches, 2) if batches else None, "bot_cpu_seconds": round(cpu, 2),
        "bot_cpu_ms_per_message": round(1000 * cpu / len(measured), 2) if measured else None,
        "loadavg_1_5_15": [round(x, 2) for x in load], "profiled": args.profile,
        "bot_rss_mb": memory["VmRSS"], "bot_peak_rss_mb": memory["VmHWM"], "bot_imported_torch": memory["torch"],
        "targets": {"bot_cpu_ms_per_message": 8.0, "messages_per_second": 150, "bot_rss_mb": 500},
    })


if __name__ == "__main__":
    main()
