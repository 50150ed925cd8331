"""`shopbot up` without a token: fill an empty database with the demo shop (training the first
adapters if none ever were), then run the web sandbox until Ctrl-C, SIGTERM or `stop`."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

from sandbox.web.server import DEFAULT_PORT, HOST
from sandbox.web.session import Sandbox
from settings import Settings

TASKS = ("sentiment", "faq")


def prepare(settings: Settings, train: bool = True, out: TextIO = sys.stdout) -> None:
    """Load the demo shop into an empty database and, if nothing was ever trained, train the first adapters."""
    from storage.seed import load_demo
    from storage.store import Store

    with Store(settings.paths.database) as store:
        if not store.faq.keys(include_retired=True) and (settings.shop.demo_data / "faq.json").is_file():
            load_demo(store, settings.shop.demo_data)
            print(f"Empty database: loaded the demo shop from {settings.shop.demo_data}", file=out, flush=True)
        active = [task for task in TASKS if store.adapters.active(task) is not None]
        tried = store.runs.last_trained() is not None  # a run that trained and gated
    if active:
        return
    if tried or not train:
        why = "no adapter has passed the quality gate yet" if tried else "no trained adapters yet"
        print(f"Note: {why}; the bot serves the base model (owner: /retrain).", file=out, flush=True)
        return
    from shop.report.text import format_estimate
    from training.args import TrainArgs
    from training.pipeline import retrain

    print("No trained adapters yet: training the first ones from the demo data.\n"
          "This happens once and takes about 4-6 minutes on 2 CPU cores: a shop this small is judged by "
          "5-fold cross-validation over all its labelled data, then trained on all of it…", file=out, flush=True)
    result = retrain(settings, "cli", args=TrainArgs(progress=True))
    print(f"Training {result.get('status')}: " + "; ".join(map(str, result.get("reasons", []))), file=out, flush=True)
    for task, outcome in (result.get("tasks") or {}).items():
        verdict = "promoted" if outcome.get("promoted") else "refused"
        print(f"  {task}: {verdict}, accuracy {format_estimate(outcome.get('metrics') or {}, 'en')}", file=out, flush=True)


def up(settings: Settings, *, port: int = DEFAULT_PORT, train: bool = True, out: TextIO = sys.stdout,
       stop: threading.Event | None = None, runtime_factory: Callable[[Settings], Any] | None = None) -> int:
    """The local sandbox: prepare the database, start the bot on the emulator, serve the page until Ctrl-C/`stop`."""
    prepare(settings, train, out)
    print("Starting the bot (loading the model)…", file=out, flush=True)
    sandbox = Sandbox(settings, runtime_factory)
    try:
        sandbox.start(port)
    except OSError as error:
        print(f"shopbot up: cannot serve on {HOST}:{port} ({error}); pick another port with --port", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - e.g. the base model cannot be built: say why, no traceback
        print(f"shopbot up: the bot could not start: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"\nSandbox ready (no Telegram needed): open {sandbox.url}\n"
          "Chat as a customer, correct the bot as staff, run /status /retrain /report /faq as the owner.\n"
          "Press Ctrl-C to stop.", file=out, flush=True)
    waiter = stop or threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():  # Ctrl-C, and SIGTERM (docker stop, systemd)
        for number in (signal.SIGINT, signal.SIGTERM):
            previous[number] = signal.signal(number, lambda *_: waiter.set())
    try:
        while not waiter.wait(0.5):
            pass
        print("\nStopping…", file=out, flush=True)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        sandbox.stop()
    return 0
