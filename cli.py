"""The `shopbot` console script: one small function per subcommand, delegating the work elsewhere."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, cast

from settings import CONFIG_ENV, TOKEN_ENV, ConfigError, Settings, load_settings
from vocabulary import SUCCESSFUL_RUNS, TASKS

log = logging.getLogger("shopbot")
Command = Callable[[Settings, argparse.Namespace], int]


# ---------------------------------------------------------------------- subcommands
def cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    """Create/migrate the database and load the demo shop (idempotent)."""
    from storage.seed import load_demo
    from storage.store import Store

    with Store(settings.paths.database) as store:
        added = load_demo(store, settings.shop.demo_data)
        totals = {"faq_keys": len(store.faq.keys()), "faq_examples": len(store.examples.all(task="faq")),
                  "sentiment_examples": len(store.examples.all(task="sentiment"))}
    print(f"database: {settings.paths.database}")
    print("added:  " + ", ".join(f"{k} {v}" for k, v in added.items()))
    print("totals: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    return 0


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    """Export corrections or labelled examples (jsonl, csv), or the shop's FAQ / reviews in the import layout."""
    from storage.store import Store

    fmt = args.format or {".csv": "csv", ".xlsx": "xlsx"}.get(Path(args.out).suffix.lower(), "jsonl")
    out = sys.stdout if args.out == "-" else Path(args.out)
    try:
        with Store(settings.paths.database) as store:
            if args.kind in ("corrections", "examples"):
                from storage.export import export

                counts = {args.kind: export(store, args.kind, cast(Literal["jsonl", "csv"], fmt), out)}  # it checks
            else:
                from shop.knowledge.exporting import export_knowledge

                counts = export_knowledge(store, args.kind, fmt, out)
    except ValueError as error:
        print(f"shopbot export: {error}", file=sys.stderr)
        return 2
    print(f"exported {', '.join(f'{count} {kind}' for kind, count in counts.items())} to {args.out}", file=sys.stderr)
    return 0


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    """Import the shop's FAQ entries and labelled reviews (.xlsx, .csv, .jsonl); refuse a file with bad rows."""
    from shop.knowledge.importing import import_knowledge
    from storage.store import Store

    with Store(settings.paths.database) as store:
        report = import_knowledge(store, args.files, settings.shop.languages, skip_bad_rows=args.skip_bad_rows)
    print("\n".join(report.lines()), file=sys.stdout if report.written else sys.stderr)
    if report.written and report.changed:
        print(f"database: {settings.paths.database} (a running bot gives a changed answer at once; it matches new "
              f"questions and phrasings once restarted)", file=sys.stderr)
    return 0 if report.written else 1


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    """Run the bot on Telegram (polling, or a webhook if configured)."""
    if not settings.token:
        print(f"shopbot run: {settings.telegram.token_env} is not set. Create a bot with @BotFather, then\n"
              f"    export {settings.telegram.token_env}=123456:ABC...\n"
              f"To try the bot without Telegram, run:  shopbot chat", file=sys.stderr)
        return 2
    from telegram import Update

    from bot.app import build_application, webhook_options

    application = build_application(settings)
    if (webhook := webhook_options(settings)) is not None:
        application.run_webhook(**webhook)
    else:
        application.run_polling(allowed_updates=Update.ALL_TYPES)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run every shop of --shops DIR in this process (one Application each, one shared base) until SIGINT/SIGTERM."""
    import asyncio
    import signal

    from bot.hosting import serve, tag_logs_with_shops

    tag_logs_with_shops()

    async def main() -> None:
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await serve(args.shops, stop)

    try:
        asyncio.run(main())
    except (ConfigError, OSError) as error:
        print(f"shopbot serve: {error}", file=sys.stderr)
        return 2
    return 0


def cmd_chat(settings: Settings, args: argparse.Namespace) -> int:
    """Talk to the bot in this terminal as customer, staff and owner (no Telegram needed)."""
    from sandbox.chat import run_chat
    from storage.seed import load_demo
    from storage.store import Store

    with Store(settings.paths.database) as store:
        if not store.faq.keys(include_retired=True) and (settings.shop.demo_data / "faq.json").is_file():
            load_demo(store, settings.shop.demo_data)
            print(f"(empty database: loaded the demo shop from {settings.shop.demo_data})")
    return run_chat(settings)


def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    """Print this week's report (the text /report sends) and save it with its chart under paths.reports.

    Without the suggested FAQ entries (the report says so): they need the serving model's FAQ embedding,
    which the bot has loaded and this command does not load; /report in Telegram has them, with buttons.
    """
    from shop.report.weekly import build_weekly_report, save_report
    from storage.store import Store

    with Store(settings.paths.database) as store:
        report = build_weekly_report(settings, store, language=args.language)
        text_path, chart_path = save_report(settings, store, report)
    print(report.text)
    print(f"saved: {text_path}\n       {chart_path}", file=sys.stderr)
    return 0


def cmd_rollback(settings: Settings, args: argparse.Namespace) -> int:
    """Roll a task back to its previous adapter (a running bot serves it within bot.jobs.WATCH_INTERVAL_S)."""
    from shop.retraining import roll_back
    from storage.store import Store

    status = 0
    with Store(settings.paths.database) as store:
        for task, outcome in roll_back(settings, store, (args.task,) if args.task else TASKS):
            if isinstance(outcome, str):
                print(f"{task}: {outcome}", file=sys.stderr)
                status = 1
            else:
                print(f"{task}: rolled back to {outcome.version}")
    return status


def cmd_train(settings: Settings, args: argparse.Namespace) -> int:
    """Retrain both models now (training.pipeline.retrain: in this process, or on Ray with training.backend = "ray")."""
    from training.backends import configured  # deferred like every subcommand's imports: it loads torch
    from training.pipeline import retrain

    result = retrain(settings, trigger="cli", force=True, backend=configured(settings, in_process=True))
    print(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    return 0 if result.get("status") in SUCCESSFUL_RUNS else 1


def cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
    """Evaluate the active adapters on the current test split (training.scoring.evaluate_active)."""
    from training.scoring import evaluate_active

    print(json.dumps(evaluate_active(settings), ensure_ascii=False, indent=2, default=str))
    return 0


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    """The bot on Telegram if a token is set, else the local sandbox (emulator + web page on 127.0.0.1)."""
    if settings.token:
        return cmd_run(settings, args)
    from sandbox.web import up

    return up(settings, port=args.port, train=not args.no_train)


def cmd_health(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 0 if the database opens and every active adapter matches its checksums (Docker HEALTHCHECK)."""
    import sqlite3

    from storage.store import Store
    from training.registry import AdapterRegistry, CorruptAdapterError

    database = settings.paths.database
    if not database.is_file():
        print(f"unhealthy: no database at {database} (run `shopbot init`)")
        return 1
    problems, serving = [], []
    try:
        with Store(database) as store:
            registry = AdapterRegistry(settings.paths.adapters, store)
            for task in TASKS:
                record = registry.active(task)
                if record is None:
                    serving.append(f"{task}: base model")
                    continue
                try:
                    registry.verify(record)
                except CorruptAdapterError as error:
                    problems.append(str(error))
                else:
                    serving.append(f"{task}: {record.version}")
    except sqlite3.Error as error:
        print(f"unhealthy: database {database}: {error}")
        return 1
    if problems:
        print("unhealthy: " + "; ".join(problems))
        return 1
    print("healthy: " + ", ".join(serving))
    return 0


def cmd_export_encoder(settings: Settings, args: argparse.Namespace) -> int:
    """Write the shop's FAQ encoder (active adapter merged in) as a folder that SentenceTransformer(OUT) loads."""
    from serving.loading import export_faq_encoder

    version = export_faq_encoder(settings, args.out)
    print(f"faq encoder {version} written to {args.out}: SentenceTransformer({str(args.out)!r}).encode(texts)")
    return 0


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser: a global --config and one subcommand."""
    parser = argparse.ArgumentParser(prog="shopbot", description="Telegram bot for a bubble-tea shop.")
    parser.add_argument("--config", type=Path, default=None,
                        help=f"config file (default: ${CONFIG_ENV}, else ./config.toml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (INFO, DEBUG with -v for run)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, function: Command, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(func=function)
        return command

    add("init", cmd_init, "create the database and load the demo shop (safe to repeat)")
    export = add("export", cmd_export, "export corrections, labelled examples, or the shop's FAQ and reviews")
    export.add_argument("--kind", choices=("corrections", "examples", "faq", "reviews", "shop"), default="corrections",
                        help="faq / reviews: the layout `shopbot import` reads; shop: both, as one .xlsx workbook")
    export.add_argument("--format", choices=("jsonl", "csv", "xlsx"), default=None,
                        help="default: from --out's suffix (.csv, .xlsx), else jsonl; xlsx only for faq, reviews, shop")
    export.add_argument("--out", required=True, help="output file, or - for stdout")
    import_ = add("import", cmd_import, "import the shop's FAQ entries and labelled reviews (.xlsx, .csv, .jsonl)")
    import_.add_argument("files", nargs="+", type=Path, help="workbook (sheets faq, reviews) or csv / jsonl files")
    import_.add_argument("--skip-bad-rows", action="store_true",
                         help="write the good rows and list the bad ones (default: a bad row refuses the whole import)")
    add("run", cmd_run, f"run the bot on Telegram (needs {TOKEN_ENV})")
    serve = sub.add_parser("serve", help="run many shops in one process (--shops DIR: a folder per shop)",
                           description="Run every shop of DIR (DIR/<shop>/config.toml, or DIR/hosting.toml's "
                                       "[[shops]]) in one process, sharing one base model; shops added, removed "
                                       "or changed in DIR are picked up while it runs.")
    serve.add_argument("--shops", type=Path, required=True, help="the hosting folder")
    serve.set_defaults(func=None)
    add("chat", cmd_chat, "chat with the bot in this terminal, without Telegram")
    add("train", cmd_train, "retrain both models now")
    add("eval", cmd_eval, "evaluate the active models")
    rollback = add("rollback", cmd_rollback, "go back to the previous adapter")
    rollback.add_argument("task", nargs="?", choices=TASKS, default=None, help="default: both")
    report = add("report", cmd_report, "print this week's report")
    report.add_argument("--language", choices=("zh", "en"), default=None)
    up = add("up", cmd_up, f"the bot if {TOKEN_ENV} is set, else the local sandbox (a web page on 127.0.0.1)")
    up.add_argument("--port", type=int, default=8080, help="the sandbox web page's port on 127.0.0.1 (default 8080)")
    up.add_argument("--no-train", action="store_true", help="sandbox: don't train the first adapters at start")
    add("health", cmd_health, "exit 0 if the database and the active adapters are intact (healthcheck)")
    export_encoder = add("export-encoder", cmd_export_encoder, "write the FAQ encoder as a sentence-transformers folder")
    export_encoder.add_argument("out", type=Path, help="output folder (created)")
    return parser


def _configure_logging(command: str, verbose: bool) -> None:
    quiet = command in ("chat", "export", "import", "report", "init", "health")
    level = logging.DEBUG if verbose and not quiet else logging.INFO if verbose or not quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Bot API request otherwise
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per job run otherwise


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `shopbot` console script."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.command, args.verbose)
    if args.command == "serve":  # each shop's own config.toml, no --config
        return cmd_serve(args)
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(f"shopbot: {error}", file=sys.stderr)
        return 2
    return args.func(settings, args)


if __name__ == "__main__":
    sys.exit(main())
