"""Training runs left "running": closed at start-up only when the process that owns them is gone."""

from __future__ import annotations

import os
import subprocess
import sys

from storage.runs import process_started
from storage.store import Store


def test_start_up_closes_only_runs_whose_owner_process_is_gone(file_store: Store) -> None:
    runs = file_store.runs
    live = runs.start("cli")  # as `shopbot train` beside the bot: owned by a live process (this one)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = runs.start("cli")
    runs.table.update(dead, {"owner_pid": gone.pid})
    reused = runs.start("manual")  # the pid of a live process, but one started at another time
    runs.table.update(reused, {"owner_started": "another boot:12345"})
    legacy = runs.start("schedule")  # recorded before runs had owners
    runs.table.update(legacy, {"owner_pid": None, "owner_started": None})

    assert runs.close_interrupted() == 3
    assert runs.get(live).status == "running" and runs.get(live).owner_pid == os.getpid()
    for run_id in (dead, reused, legacy):
        run = runs.get(run_id)
        assert run.status == "failed" and "stopped before" in (run.error or "")
    assert runs.close_interrupted() == 0


def test_the_training_child_claims_the_run_it_trains(file_store: Store) -> None:
    runs = file_store.runs
    run_id = runs.start("manual")
    runs.table.update(run_id, {"owner_pid": 1, "owner_started": "the bot"})
    runs.claim(run_id)
    run = runs.get(run_id)
    assert (run.owner_pid, run.owner_started) == (os.getpid(), process_started(os.getpid()))


def test_migration_adds_the_owner_columns_and_old_running_rows_are_closed(tmp_path) -> None:
    path = tmp_path / "shopbot.db"
    with Store(path) as store:  # a database from before runs had owners
        store.db.execute("ALTER TABLE training_runs DROP COLUMN owner_pid")
        store.db.execute("ALTER TABLE training_runs DROP COLUMN owner_started")
        store.db.table("_sqlite_migrations").delete_where("name = ?", ["m002_training_run_owner"])
        store.db.table("training_runs").insert({"trigger": "schedule", "status": "running",
                                                "started_at": "2026-11-01T03:00:00+00:00"})
    with Store(path) as store:
        assert {"owner_pid", "owner_started"} <= set(store.db.table("training_runs").columns_dict)
        assert store.runs.close_interrupted() == 1
