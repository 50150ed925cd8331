"""Many shops in one process (`shopbot serve`): memory with 1, 5 and 20 shops, decide latency, isolation of a swap.

One script on purpose (over 300 lines): a benchmark is read top to bottom, set-up, runs and report together.

    python bench/shops.py                    # bundled e5-small, demo shop ×20, shipped config.toml

Every shop is the demo shop (data/demo) with a sentiment and an FAQ adapter of the real shape (random LoRA
weights: publishing trained ones for 20 shops would take hours on 2 cores; memory and compute do not depend
on the weights), in its own folder with the shipped config.toml, its own token variable, database,
adapters and staff chat, and its own Bot API emulator (in this parent process).

- memory: for n in 1, 5, 20 a fresh child process runs `ShopHost` (the real `shopbot serve`: one
  Application per shop, polling, one shared base) over n shops; once every shop serves and each has
  answered 10 customer messages through Telegram (the emulator), the child reads VmRSS from
  /proc/self/status. The per-shop increment is (RSS(20) - RSS(1)) / 19.
- latency: in the same children, 200 decisions of shop 1's runtime (`ModelRuntime.decide`, the demo's
  texts, one at a time, nothing else running) with n shops loaded: p50 / p99 for n = 1 and 20.
- isolation: in this process, shops A and B served by one host; customers write to both while A's
  adapters are swapped back and forth (`Services.reload_adapters`, promote set 1 / set 2). Every reply of B
  is compared with B's reply to the same text before the load (a control run without swaps first, to
  separate batching effects from the swap); lost = messages without a reply.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import common  # noqa: F401  (sys.path)
from common import REPO, base_folder, percentile, save

from sandbox.emulator import BotAPIEmulator, FakeUser
from storage.seed import load_demo
from storage.store import Store

COUNTS = (1, 5, 20)
DEMO = REPO / "data" / "demo"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default=",".join(map(str, COUNTS)), help="shops per memory run")
    parser.add_argument("--decisions", type=int, default=200, help="timed decisions per latency run")
    parser.add_argument("--messages", type=int, default=10, help="customer messages per shop before RSS is read")
    parser.add_argument("--load", type=int, default=120, help="isolation: messages to each of A and B")
    parser.add_argument("--swaps", type=int, default=4, help="isolation: swaps of A during the load")
    parser.add_argument("--out", default="shops")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)  # internal: one memory run
    return parser.parse_args(argv)


# ---------------------------------------------------------------------- shops on disk
def _toml(data: dict[str, dict[str, Any]]) -> str:
    return "".join(f"[{name}]\n" + "".join(f"{key} = {json.dumps(value, ensure_ascii=False)}\n"
                                           for key, value in values.items()) + "\n" for name, values in data.items())


def make_template(folder: Path) -> Path:
    """The demo shop's database with two published adapter sets (set 1 active), built once."""
    from swap import publish_set  # imports torch: only here, so the memory children (the product) never load it

    from settings import settings_from_dict
    from training.encoder import load_encoder
    from training.registry import AdapterRegistry

    settings = settings_from_dict({"model": {"base": str(base_folder(None))}}, folder, env={})
    encoder = load_encoder(settings)
    with Store(settings.paths.database) as store:
        load_demo(store, DEMO)
        registry = AdapterRegistry(settings.paths.adapters, store)
        sets = [publish_set(registry, encoder, f"s{seed}", seed, str(base_folder(None))) for seed in (1, 2)]
        for version in sets[0].values():
            registry.promote(version, ["bench: set 1"])
    (folder / "sets.json").write_text(json.dumps(sets))
    return folder


def make_shop(hosting: Path, template: Path, number: int, emulator: BotAPIEmulator) -> dict[str, Any]:
    """Shop `number`: the template's files, the shipped config.toml with its own token variable, emulator, staff."""
    folder = hosting / f"shop{number:02d}"
    shutil.copytree(template / "var", folder / "var")
    data = tomllib.loads((REPO / "config.toml").read_text(encoding="utf-8"))
    data["model"]["base"] = str(base_folder(None))  # the bundled build, not rebuilt per shop
    data["shop"]["demo_data"] = str(DEMO)
    data["paths"] = {"database": "var/shopbot.db", "adapters": "var/adapters", "reports": "var/reports"}
    data["roles"] = {"owner_ids": [7000 + number], "staff_ids": [7100 + number], "staff_chat_id": -100_700 - number}
    data["telegram"] = {"api_url": emulator.base_url, "file_url": emulator.base_file_url,
                        "token_env": f"SHOP{number:02d}_TOKEN"}
    (folder / "config.toml").write_text(_toml(data), encoding="utf-8")
    emulator.add_chat(-100_700 - number)
    return {"name": folder.name, "token_env": f"SHOP{number:02d}_TOKEN", "token": emulator.token}


def start_emulators(n: int) -> list[BotAPIEmulator]:
    emulators = [BotAPIEmulator(token=f"{8000 + i}:BENCH", flood_limits=False) for i in range(n)]
    for emulator in emulators:
        emulator.start()
    return emulators


# ---------------------------------------------------------------------- the host in a thread
class Hosted:
    """ShopHost over `folder` in its own thread and event loop."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        from bot.hosting import HostOptions, ShopHost

        self.host = ShopHost(folder, env, HostOptions(flood_limits=False, poll_timeout_s=1))
        self._ready = threading.Event()
        self.thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self.thread.start()
        self._ready.wait(30)

    async def _main(self) -> None:
        self.loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._ready.set()
        await self.host.run(self._stop)

    def wait_running(self, names: list[str], timeout: float = 1800) -> float:
        started = time.monotonic()
        while any((shop := self.host.shops.get(name)) is None or shop.state != "running" for name in names):
            failed = [(n, s.problem) for n, s in self.host.shops.items() if s.state == "failed"]
            if failed or time.monotonic() - started > timeout:
                raise RuntimeError(f"shops did not start: {failed or self.host.states()}")
            time.sleep(0.1)
        return time.monotonic() - started

    def services(self, name: str) -> Any:
        application = self.host.shops[name].application
        assert application is not None
        return application.bot_data.services

    def run(self, coroutine: Any, timeout: float = 600) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(120)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def child(plan_path: Path) -> None:
    """One memory run: serve plan["shops"], wait for the parent's traffic, report RSS and shop 1's latency."""
    plan = json.loads(plan_path.read_text())
    hosted = Hosted(Path(plan["folder"]), plan["env"])
    started = hosted.wait_running(plan["shops"])
    print(json.dumps({"ready": True, "start_s": round(started, 1), "rss_mb": round(rss_mb(), 1)}), flush=True)
    sys.stdin.readline()  # the parent's messages have been answered
    rss = rss_mb()
    runtime = hosted.services(plan["shops"][0]).runtime
    texts = plan["texts"]
    for text in texts[:20]:
        runtime.decide(text)  # warm-up
    seconds = []
    for i in range(plan["decisions"]):
        t0 = time.perf_counter()
        runtime.decide(texts[i % len(texts)])
        seconds.append(time.perf_counter() - t0)
    bases = len(hosted.host.bases)
    hosted.stop()
    print(json.dumps({"rss_mb": round(rss, 1), "bases_loaded": bases,
                      "decide_ms": {"p50": round(1000 * percentile(seconds, 50), 2),
                                    "p99": round(1000 * percentile(seconds, 99), 2), "n": len(seconds)}}), flush=True)


def converse(emulator: BotAPIEmulator, user: FakeUser, texts: list[str], timeout: float = 120) -> list[str | None]:
    """`user` sends each text and waits for the reply; the replies (None: none came)."""
    replies: list[str | None] = []
    for text in texts:
        sent = emulator.send_text(user, text)
        try:
            replies.append(emulator.wait_for_message(user.id, after=sent["message_id"], timeout=timeout)["text"])
        except TimeoutError:
            replies.append(None)
    return replies


def memory_run(n: int, hosting: Path, shops: list[dict[str, Any]], emulators: list[BotAPIEmulator],
               texts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    names = [shop["name"] for shop in shops[:n]]
    plan = {"folder": str(hosting / f"run{n}"), "shops": names, "texts": texts, "decisions": args.decisions,
            "env": {**os.environ, **{shop["token_env"]: shop["token"] for shop in shops}}}
    run_folder = hosting / f"run{n}"
    run_folder.mkdir()
    for name in names:  # a hosting folder holding exactly these n shops
        (run_folder / name).symlink_to(hosting / name)
    (run_folder / "hosting.toml").write_text('[hosting]\nmodel_cache = "../models"\n')
    plan_path = hosting / f"plan{n}.json"
    plan_path.write_text(json.dumps(plan))
    process = subprocess.Popen([sys.executable, __file__, "--child", str(plan_path)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert process.stdin is not None and process.stdout is not None
    ready = json.loads(process.stdout.readline())
    print(f"  {n} shops serving after {ready['start_s']} s, RSS {ready['rss_mb']} MB", flush=True)
    lost = 0
    for i, emulator in enumerate(emulators[:n]):
        replies = converse(emulator, FakeUser(60_000 + i, f"C{i}", "zh"), texts[:args.messages])
        lost += replies.count(None)
    process.stdin.write("go\n")
    process.stdin.flush()
    result = json.loads(process.stdout.readline())
    process.wait(120)
    print(f"  {n} shops: RSS {result['rss_mb']} MB after {args.messages} messages each ({lost} unanswered); "
          f"decide p50 {result['decide_ms']['p50']} ms p99 {result['decide_ms']['p99']} ms", flush=True)
    return {"shops": n, "start_s": ready["start_s"], "rss_mb_ready": ready["rss_mb"], **result, "unanswered": lost}


# ---------------------------------------------------------------------- isolation
def isolation(hosting: Path, template: Path, args: argparse.Namespace, texts: list[str]) -> dict[str, Any]:
    """Load on A and B while A swaps; B's replies against its replies before the load."""
    from training.registry import AdapterRegistry

    folder = hosting / "isolation"
    folder.mkdir()
    emulators = start_emulators(2)
    shops = [make_shop(folder, template, 90 + i, emulator) for i, emulator in enumerate(emulators)]
    env = {**os.environ, **{shop["token_env"]: shop["token"] for shop in shops}}
    (folder / "hosting.toml").write_text('[hosting]\nmodel_cache = "../models"\n')
    hosted = Hosted(folder, env)
    names = [shop["name"] for shop in shops]
    hosted.wait_running(names)
    sets = json.loads((template / "sets.json").read_text())
    rng = random.Random(7)
    load = [rng.choice(texts) for _ in range(args.load)]
    distinct = sorted(set(load))
    baseline = dict(zip(distinct, converse(emulators[1], FakeUser(61_000, "B0", "zh"), distinct)))

    def phase(swaps: int, tag: int) -> dict[str, Any]:
        replies: dict[str, list[tuple[str, str | None]]] = {"A": [], "B": []}

        def customer(shop: str, emulator: BotAPIEmulator, k: int) -> None:
            mine = load[k::2]
            got = converse(emulator, FakeUser(62_000 + 10 * tag + 2 * k + (shop == "B"), f"{shop}{k}", "zh"), mine)
            replies[shop] += list(zip(mine, got))

        threads = [threading.Thread(target=customer, args=(shop, emulator, k))
                   for shop, emulator in (("A", emulators[0]), ("B", emulators[1])) for k in range(2)]
        for thread in threads:
            thread.start()
        swap_seconds = []
        settings = hosted.services(names[0]).settings
        for i in range(swaps):
            time.sleep(1.0)
            with Store(settings.paths.database) as store:
                registry = AdapterRegistry(settings.paths.adapters, store)
                for version in sets[(i + 1) % 2].values():
                    registry.promote(version, [f"bench: swap {i + 1}"])
            t0 = time.perf_counter()
            hosted.run(hosted.services(names[0]).reload_adapters())
            swap_seconds.append(round(time.perf_counter() - t0, 2))
        for thread in threads:
            thread.join()
        b_changed = sum(1 for text, reply in replies["B"] if reply is not None and reply != baseline[text])
        return {"swaps": swaps, "swap_s": swap_seconds, "a_replies": len(replies["A"]),
                "a_lost": sum(reply is None for _, reply in replies["A"]), "b_replies": len(replies["B"]),
                "b_lost": sum(reply is None for _, reply in replies["B"]), "b_changed": b_changed}

    control = phase(0, 1)
    print(f"  control (no swap): {control}", flush=True)
    swapped = phase(args.swaps, 2)
    print(f"  A swapping: {swapped}", flush=True)
    b_version = hosted.services(names[1]).runtime.serving.version
    hosted.stop()
    for emulator in emulators:
        emulator.stop()
    return {"control": control, "with_swaps": swapped, "b_serving_after": b_version,
            "distinct_texts": len(distinct)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.child is not None:
        child(args.child)
        return {}
    counts = [int(n) for n in args.counts.split(",")]
    hosting = Path(tempfile.mkdtemp(prefix="shops-bench-"))
    started = time.perf_counter()
    template = make_template(hosting / "template")
    print(f"template shop (demo data, 2 adapter sets) in {time.perf_counter() - started:.0f} s", flush=True)
    emulators = start_emulators(max(counts))
    shops = [make_shop(hosting, template, i + 1, emulator) for i, emulator in enumerate(emulators)]
    from swap import shop_texts

    texts = shop_texts(DEMO)
    random.Random(3).shuffle(texts)
    runs = [memory_run(n, hosting, shops, emulators, texts, args) for n in counts]
    for emulator in emulators:
        emulator.stop()
    first, last = runs[0], runs[-1]
    increment = (last["rss_mb"] - first["rss_mb"]) / (last["shops"] - first["shops"]) if len(runs) > 1 else None
    result: dict[str, Any] = {
        "what": "RSS of one `shopbot serve` process (polling, emulators in the parent) serving n demo shops",
        "adapters": "random-weight LoRA adapters of the real shape (sentiment + FAQ), not trained",
        "config": "config.toml as shipped; per shop: paths, roles, telegram.api_url/token_env; hosting model_cache",
        "memory": runs,
        "per_shop_increment_mb": None if increment is None else round(increment, 1),
        "latency_ratio_p50": round(last["decide_ms"]["p50"] / first["decide_ms"]["p50"], 3),
        "latency_ratio_p99": round(last["decide_ms"]["p99"] / first["decide_ms"]["p99"], 3),
        "isolation": isolation(hosting, template, args, texts) if args.load else None,
        "load_average": os.getloadavg(),
        "args": {k: v for k, v in vars(args).items() if k != "child"},
    }
    shutil.rmtree(hosting, ignore_errors=True)
    save(args.out, result)
    return result


if __name__ == "__main__":
    main()
