"""Two processes writing to one WAL database file at the same time lose nothing and raise nothing.

Both also race to create and migrate the file, and run read-then-write transactions
(`customers.touch`), which fail with "database is locked" unless they BEGIN IMMEDIATE.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from storage.store import Store

ROOT = Path(__file__).resolve().parent.parent
ROWS = 500

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from storage.store import Store

    path, customer, go = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.005)
    errors = 0
    with Store(path) as store:
        for i in range(int(sys.argv[4])):
            try:
                store.customers.touch(customer, "en")  # read-then-write transaction
                store.messages.add(customer, customer, i, f"message {i} from {customer}")
            except Exception as error:  # counted, and reported by the exit code
                errors += 1
                print(repr(error), file=sys.stderr)
    sys.exit(1 if errors else 0)
    """
)


def test_two_processes_write_500_rows_each_without_errors(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"  # not created yet: both processes also race to migrate it
    go = tmp_path / "go"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(customer), str(go), str(ROWS)],
                         cwd=ROOT, stderr=subprocess.PIPE, text=True)
        for customer in (1, 2)
    ]
    time.sleep(0.5)  # let both start up and wait at the barrier
    go.touch()
    results = [(writer.wait(timeout=120), writer.stderr.read()) for writer in writers]
    assert results == [(0, ""), (0, "")]
    with Store(path) as store:
        assert store.db.table("messages").count == 2 * ROWS
        for customer in (1, 2):
            assert store.db.table("messages").count_where("customer_id = ?", [customer]) == ROWS
