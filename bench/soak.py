"""Soak: sustained traffic through the real bot for minutes, with a retrain and adapter swap in the middle.

One script on purpose (over 300 lines): a benchmark is read top to bottom, set-up, run and report together.

    python bench/soak.py --minutes 5 --customers 8 --rate 8           # the real model (as served)
    python bench/soak.py --seconds 20 --customers 4 --rate 6 --tiny   # tiny random model: a quick check

The bot runs in a process of its own (exactly `build_application` + the real model loader, as
`shopbot run`), polling a Bot API emulator on 127.0.0.1 that lives in this process, so the bot's
memory is measured alone. Customers send demo-shop questions and reviews at `--rate` messages/s in
total, each waiting for the reply before the next message (new customers keep arriving: every
customer leaves after 25 messages); a staff member confirms every few mirrors with ✅; at
`--retrain-at` of the run the owner sends /retrain, which trains in a child process and hot-swaps
the adapters it promotes (the gate is opened for the soak so a swap really happens).

Reports throughput, reply latency (p50/p90/p99/max, overall and while retraining), lost replies,
errors logged by the bot, and the bot's RSS, open files and threads over time: growth after
warm-up should be flat. Saves bench/results/soak.json (or --out). Loopback only; bounded by --minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import common  # noqa: F401 - puts the repo on sys.path
import numpy as np
from common import REPO, RESULTS

from sandbox.emulator import BotAPIEmulator, FakeUser, as_api_message

STAFF_CHAT = -1_000_100
OWNER = FakeUser(30_100, "Owner", "en")
STAFF = FakeUser(20_100, "Staff", "en")
MESSAGES_PER_CUSTOMER = 25
GATE_OPEN = "sentiment_accuracy = 0.0\nfaq_accuracy = 0.0\nmax_regression = 1.0\nmin_new_examples = 0\n"


# ---------------------------------------------------------------------- the emulator, for a long run
class SoakEmulator(BotAPIEmulator):
    """The emulator plus a cheap per-chat reply counter, and forgetting of finished chats.

    `wait_for_message` re-scans every stored message on each Bot API call; over tens of thousands
    of messages that would cost this process (and so the bot, on the same cores) real CPU time.
    """

    def __init__(self) -> None:
        super().__init__()
        self.replies: dict[int, int] = defaultdict(int)
        self.replied = threading.Condition()

    def _bot_message(self, p: dict, method: str, **content: Any) -> dict:
        message = super()._bot_message(p, method, **content)
        with self.replied:
            self.replies[message["chat"]["id"]] += 1
            self.replied.notify_all()
        return message

    def wait_reply(self, chat_id: int, count: int, timeout: float) -> bool:
        """Wait until the chat has more than `count` bot messages."""
        with self.replied:
            return self.replied.wait_for(lambda: self.replies[chat_id] > count, timeout)

    def forget_chat(self, chat_id: int, keep_last: int = 0) -> None:
        """Drop a chat's stored messages (all but the newest `keep_last`) and trim the call log."""
        with self._cond:
            last = self._last_message_id.get(chat_id, 0)
            for key in [k for k in self._messages if k[0] == chat_id and k[1] <= last - keep_last]:
                del self._messages[key]
            del self._requests[:-2000]

    def new_staff_messages(self, after: int) -> list[dict]:
        """Staff-chat messages with id > after, as the Bot API shows them."""
        with self._cond:
            last = self._last_message_id.get(STAFF_CHAT, 0)
            found = (self._messages.get((STAFF_CHAT, i)) for i in range(after + 1, last + 1))
            return [as_api_message(m) | {"from_bot": m["from_bot"]} for m in found if m is not None]


# ---------------------------------------------------------------------- the bot process
def serve(config: Path, base_url: str, token: str) -> None:
    """Child mode: the real bot (build_application, real model) polling the emulator until SIGTERM."""
    import logging

    from bot.app import build_application, running
    from settings import load_settings

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(config).with_bot_api(base_url, base_url.replace("/bot", "/file/bot"), token)
    app = build_application(settings, flood_limits=False)

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with running(app):
            print("ready", flush=True)
            await stop.wait()

    asyncio.run(main())


def process_stats(pid: int) -> dict[str, float]:
    """RSS (MB), open file descriptors and threads of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rss_mb": int(fields["VmRSS"].split()[0]) / 1024, "threads": int(fields["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


# ---------------------------------------------------------------------- set-up
def write_config(workdir: Path, base: str, top_layers: int | None, demo: Path) -> Path:
    """A config for the soak: its own database and adapters, the soak's roles, the gate open."""
    model = f'base = "{base}"\n' + (f"top_layers = {top_layers}\n" if top_layers else "")
    config = workdir / "soak.toml"
    config.write_text(f"""[shop]
languages = ["zh", "en"]
demo_data = "{demo}"
[roles]
owner_ids = [{OWNER.id}]
staff_ids = [{STAFF.id}]
staff_chat_id = {STAFF_CHAT}
[model]
{model}[thresholds]
{GATE_OPEN}[paths]
database = "soak.db"
adapters = "adapters"
model_cache = "{REPO / '.cache' / 'models' if base == 'bundled' else workdir / 'models'}"
reports = "reports"
""", encoding="utf-8")
    return config


def prepare(config: Path) -> list[str]:
    """Load the demo shop and train first adapters if none is active; return the sample customer texts."""
    from settings import load_settings
    from storage.seed import load_demo
    from storage.store import Store

    settings = load_settings(config, env={})
    with Store(settings.paths.database) as store:
        if not store.faq.keys():
            load_demo(store, settings.shop.demo_data)
        active = store.adapters.active("faq") or store.adapters.active("sentiment")
        texts = [e.text for e in store.examples.all()] + [entry.question for entry in store.faq.all()]
    if not active:
        from training.pipeline import run_retrain

        print("training the first adapters (once per --workdir)…", flush=True)
        print(json.dumps(run_retrain(settings, "cli"), ensure_ascii=False, default=str)[:400], flush=True)
    return texts


# ---------------------------------------------------------------------- the run
def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    array = np.array(values)
    return {"p50": round(float(np.percentile(array, 50)), 1), "p90": round(float(np.percentile(array, 90)), 1),
            "p99": round(float(np.percentile(array, 99)), 1), "max": round(float(array.max()), 1)}


def soak(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    if args.tiny:
        from training.base_model import build_tiny

        base = str(build_tiny(workdir / "tiny-bert")) if not (workdir / "tiny-bert").exists() else str(
            workdir / "tiny-bert")
        config = write_config(workdir, base, 1, REPO / "tests" / "data" / "mini_shop")
    else:
        config = write_config(workdir, "bundled", None, REPO / "data" / "demo")
    texts = prepare(config)
    rng = random.Random(13)
    # Flood limits off, here and in the bot: the soak sends --rate mirrors/s to one staff group, far over
    # Telegram's 20/min, to load the bot itself; paced, they would only queue up.
    emulator = SoakEmulator(flood_limits=False)
    emulator.add_chat(STAFF_CHAT)
    emulator.start()
    log_path = workdir / "bot.log"
    with open(log_path, "w") as log:
        bot = subprocess.Popen([sys.executable, __file__, "--serve", str(config), emulator.base_url, emulator.token],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True,
                               env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    try:
        if bot.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the bot did not start: {log_path.read_text(errors='replace')[-2000:]}")
        result = drive(args, emulator, bot.pid, texts, rng)
    finally:
        bot.send_signal(signal.SIGTERM)
        try:
            bot.wait(60)
        except subprocess.TimeoutExpired:
            bot.kill()
        emulator.stop()
    lines = log_path.read_text(errors="replace").splitlines()
    errors = [line for line in lines if " ERROR " in line or "Traceback" in line]
    print(f"bot log: {log_path} ({len(errors)} error lines)", flush=True)
    return result | {"bot_exit_code": bot.returncode, "bot_errors_logged": len(errors), "bot_error_lines": errors[:20]}


def drive(args: argparse.Namespace, emulator: SoakEmulator, pid: int, texts: list[str],
          rng: random.Random) -> dict[str, Any]:
    duration = args.seconds if args.seconds else args.minutes * 60
    warmup = min(60.0, duration / 4)
    started = time.monotonic()
    deadline = started + duration
    lock = threading.Lock()
    latencies: list[tuple[float, float]] = []  # (time since start, ms)
    lost: list[str] = []
    sent = [0]
    user_ids = itertools.count(200_000)
    interval = args.customers / args.rate  # each customer's pace

    def customer(n: int) -> None:
        local = random.Random(n)
        user = None
        for i in itertools.count():
            if time.monotonic() >= deadline:
                return
            if i % MESSAGES_PER_CUSTOMER == 0:  # this customer leaves; a new one arrives
                if user is not None:
                    emulator.forget_chat(user.id)
                user = FakeUser(next(user_ids), f"c{n}-{i}", local.choice(["zh-hans", "en", None]))
            begin = time.monotonic()
            before = emulator.replies[user.id]
            emulator.send_text(user, local.choice(texts))
            with lock:
                sent[0] += 1
            if emulator.wait_reply(user.id, before, timeout=60):
                with lock:
                    latencies.append((begin - started, (time.monotonic() - begin) * 1000))
            else:
                with lock:
                    lost.append(user.first_name)
            time.sleep(max(0.0, interval - (time.monotonic() - begin)) * local.uniform(0.5, 1.5))

    confirmations = [0]

    def staff() -> None:
        seen = 0
        while time.monotonic() < deadline:
            time.sleep(0.5)
            for message in emulator.new_staff_messages(seen):
                seen = max(seen, message["message_id"])
                ok = [b["callback_data"] for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])
                      for b in row if b.get("callback_data", "").endswith(":ok")]
                if message["from_bot"] and ok and rng.random() < 0.2:
                    try:
                        emulator.press_button(STAFF, message, ok[0])
                    except ValueError:  # edited or forgotten meanwhile
                        continue
                    confirmations[0] += 1
            emulator.forget_chat(STAFF_CHAT, keep_last=300)

    retrain: dict[str, Any] = {}

    def owner() -> None:
        time.sleep(max(0.0, started + duration * args.retrain_at - time.monotonic()))
        before = emulator.replies[OWNER.id]
        retrain["sent_at_s"] = round(time.monotonic() - started, 1)
        emulator.send_command(OWNER, "retrain")
        if not emulator.wait_reply(OWNER.id, before + 1, timeout=duration + 1800):  # started, then finished
            return
        retrain["finished_at_s"] = round(time.monotonic() - started, 1)
        retrain["seconds"] = round(retrain["finished_at_s"] - retrain["sent_at_s"], 1)
        retrain["owner_told"] = emulator.messages(OWNER.id)[-1]["text"]

    samples: list[dict[str, float]] = []
    sampling = threading.Event()

    def sample() -> None:  # until the end, the retrain's swap included
        while not sampling.wait(1.0):
            samples.append({"t": round(time.monotonic() - started, 1), **process_stats(pid)})

    threads = [threading.Thread(target=customer, args=(n,), daemon=True) for n in range(args.customers)]
    threads += [threading.Thread(target=f, daemon=True) for f in (staff, sample)]
    owner_thread = threading.Thread(target=owner, daemon=True)
    for thread in [*threads, owner_thread]:
        thread.start()
    last_report = started
    while any(t.is_alive() for t in threads[: args.customers]):
        time.sleep(0.5)
        if time.monotonic() - last_report >= 10:
            last_report = time.monotonic()
            with lock:
                recent = [ms for t, ms in latencies if t >= last_report - started - 10]
            rss = samples[-1]["rss_mb"] if samples else 0
            print(f"t={last_report - started:5.0f}s replies={len(latencies)} last10s={len(recent) / 10:.1f}/s "
                  f"p99={percentiles(recent)['p99']}ms rss={rss:.0f}MB retrain={retrain or '-'}", flush=True)
    elapsed = time.monotonic() - started
    if retrain.get("sent_at_s") is not None and "finished_at_s" not in retrain:
        print("waiting for the retrain to finish…", flush=True)
        owner_thread.join(args.retrain_wait)
    time.sleep(3)  # a few samples after the swap
    sampling.set()
    for thread in threads:
        thread.join(10)

    after = [s for s in samples if s["t"] >= warmup]
    slope = float(np.polyfit([s["t"] for s in after], [s["rss_mb"] for s in after], 1)[0]) * 60 if len(after) > 2 else None
    window = (retrain.get("sent_at_s", -1), retrain.get("finished_at_s", duration))
    during = [ms for t, ms in latencies if window[0] <= t <= window[1]]
    buckets: dict[int, list[float]] = defaultdict(list)
    for t, ms in latencies:
        buckets[int(t // 10) * 10].append(ms)
    return {
        "model": "tiny random BERT (harness check only)" if args.tiny else "bundled multilingual-e5-small",
        "seconds": round(elapsed, 1), "customers": args.customers, "target_rate_per_s": args.rate,
        "sent": sent[0], "replied": len(latencies), "lost": len(lost),
        "throughput_per_s": round(len(latencies) / elapsed, 2),
        "latency_ms": percentiles([ms for _, ms in latencies]),
        "latency_while_retraining_ms": percentiles(during), "staff_confirmations": confirmations[0],
        "retrain": retrain,
        "rss_mb": {
            "start": round(samples[0]["rss_mb"], 1) if samples else None,
            "after_warmup": round(after[0]["rss_mb"], 1) if after else None,
            "end": round(samples[-1]["rss_mb"], 1) if samples else None,
            "max": round(max(s["rss_mb"] for s in samples), 1) if samples else None,
            "growth_after_warmup": round(after[-1]["rss_mb"] - after[0]["rss_mb"], 1) if after else None,
            "slope_after_warmup_mb_per_min": round(slope, 2) if slope is not None else None,
            "warmup_s": warmup,
        },
        "fds": {"after_warmup": after[0]["fds"] if after else None, "end": samples[-1]["fds"] if samples else None},
        "threads": {"after_warmup": after[0]["threads"] if after else None,
                    "end": samples[-1]["threads"] if samples else None},
        "per_10s": [{"t": t, "replies_per_s": round(len(v) / 10, 1), "p99_ms": percentiles(v)["p99"]}
                    for t, v in sorted(buckets.items())],
    }


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(Path(sys.argv[2]), sys.argv[3], sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5, help="how long traffic runs (default 5)")
    parser.add_argument("--seconds", type=float, default=None, help="the same in seconds (overrides --minutes)")
    parser.add_argument("--customers", type=int, default=8, help="customers chatting at once (default 8)")
    parser.add_argument("--rate", type=float, default=8, help="messages per second in total (default 8)")
    parser.add_argument("--retrain-at", type=float, default=0.4, help="fraction of the run at which /retrain is sent")
    parser.add_argument("--retrain-wait", type=float, default=900, help="seconds to wait for it after the traffic")
    parser.add_argument("--tiny", action="store_true", help="tiny random model + mini shop: a quick harness check")
    parser.add_argument("--workdir", type=Path, default=None, help="keep database/adapters here (reused next time)")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    args = parser.parse_args()
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = soak(args, args.workdir.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="shopbot-soak-") as tmp:
            result = soak(args, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(json.dumps({k: v for k, v in result.items() if k != "per_10s"}, ensure_ascii=False))


if __name__ == "__main__":
    main()
