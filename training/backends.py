"""Where `train_candidates` runs: in this process, in a spawned child (`local`), or as a Ray task (`ray`).

`[training] backend` chooses. Every backend takes a `TrainJob` (the snapshot, the recipe, the base
model folder, the active adapters as folders, a scratch output folder) and returns the `Trained`
result with each candidate's files under the output folder, or raises `TrainingFailed` with the
reason (a crash, a kill, the timeout, a remote error). Nothing here touches the database or the
adapter registry: the serving side (`training.pipeline.retrain`) verifies, publishes and gates.
The bot imports this module without torch: `train_candidates` (and with it torch) is imported where
it runs, in the child, the Ray worker or a process that trains in itself.

- `local` (the default): a spawned child process with `model.train_threads` torch threads, so the bot
  keeps answering; killed after `schedule.retrain_timeout_minutes`. The bot's local retrains in one process
  take turns (`local_turn`, taken in `training.pipeline.run_retrain`, first come first served), so shops hosted together never train at once;
  the time a run waits for its turn does not count against its limit.
- `ray`: the same function as a Ray task on the cluster at `training.ray_address` (ray is imported only
  then; `pip install 'shopbot[cluster]'`). The snapshot is put in the object store once per run, the
  base model folder once per process (the worker unpacks it once per node and reuses it), the active
  adapters as bytes; the candidates come back as bytes and are unpacked into the output folder.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import multiprocessing
import os
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from settings import Settings
from training.job import ActiveAdapter, Recipe, Trained
from training.snapshot import Snapshot

log = logging.getLogger(__name__)

RESULT = "result.json"  # what a training child leaves in its output folder when it finished
FEATURES = "features"  # the trunk feature cache's folder under paths.model_cache (and a Ray worker's scratch)
SCRATCH_ENV = "SHOPBOT_RAY_SCRATCH"  # a Ray worker keeps the base model and its feature cache here (default: the temp folder)


class TrainingFailed(RuntimeError):
    """Training did not produce candidates; the message is the reason recorded with the run."""


@dataclass(frozen=True)
class TrainJob:
    """Everything `train_candidates` is given; `out` is an empty scratch folder for the candidates."""

    snapshot: Snapshot
    recipe: Recipe
    base: Path
    active: Mapping[str, ActiveAdapter]
    out: Path
    features: Path | None = None  # the serving machine's feature cache; used by in-process and local only


class Backend(Protocol):
    """Runs one job to its `Trained` result, or raises TrainingFailed."""

    def train(self, job: TrainJob) -> Trained:
        """Train the job's candidates into `job.out`."""


def timeout_reason(minutes: float) -> str:
    """Why a run stopped at the limit."""
    return f"training was still running after {minutes:g} minutes (schedule.retrain_timeout_minutes): stopped"


# ---------------------------------------------------------------------- in this process
class InProcess:
    """`train_candidates` right here (`shopbot train`, the sandbox's first train, benchmarks)."""

    def train(self, job: TrainJob) -> Trained:
        from training.candidates import train_candidates  # torch: imported where the training runs

        return train_candidates(job.snapshot, job.recipe, job.base, job.active, job.out, job.features)


# ---------------------------------------------------------------------- local: a spawned child, one at a time
class FairTurn:
    """One holder at a time, in the order they asked (a ticket lock): a waiting shop is never overtaken."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._issued = 0
        self._serving = 0
        self._waiting: dict[int, str] = {}  # ticket -> who waits with it

    @contextmanager
    def turn(self, who: str = "") -> Iterator[None]:
        """Wait for this caller's turn; hold it for the block."""
        with self._changed:
            ticket, self._issued = self._issued, self._issued + 1
            self._waiting[ticket] = who
            self._changed.wait_for(lambda: self._serving == ticket)
            del self._waiting[ticket]
        try:
            yield
        finally:
            with self._changed:
                self._serving += 1
                self._changed.notify_all()

    def waiting(self, who: str) -> bool:
        """Whether `who` waits for a turn now (another holds it)."""
        with self._changed:
            return who in self._waiting.values()

    def queued(self) -> int:
        """How many hold or wait for a turn now."""
        with self._changed:
            return self._issued - self._serving


def turn_owner(settings: Settings) -> str:
    """Whose local turn a retrain takes and waits for: its shop, named by the shop's database."""
    return str(settings.paths.database)


@functools.cache
def local_turn() -> FairTurn:
    """The process-wide turn every local training takes (made on first use)."""
    return FairTurn()


def _child_main(job: TrainJob) -> None:
    """The training child: train, then leave the result beside the candidates (written last, atomically)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s train[%(process)d] %(levelname)s %(message)s")
    trained = InProcess().train(job)
    tmp = job.out / f"{RESULT}.tmp"
    tmp.write_text(json.dumps(trained.as_dict(), ensure_ascii=False))
    os.replace(tmp, job.out / RESULT)


class LocalChild:
    """A spawned child process per run, killed after `timeout_minutes` (the bot's runs take `local_turn` first:
    `training.pipeline.run_retrain`)."""

    def __init__(self, timeout_minutes: float) -> None:
        self.timeout_minutes = timeout_minutes

    def train(self, job: TrainJob) -> Trained:
        process = multiprocessing.get_context("spawn").Process(
            target=_child_main, args=(job,), name="shopbot-train", daemon=True)
        process.start()
        process.join(self.timeout_minutes * 60)
        timed_out = process.is_alive()
        if timed_out:
            process.kill()
            process.join()
        if timed_out:
            raise TrainingFailed(timeout_reason(self.timeout_minutes))
        result = job.out / RESULT
        if process.exitcode != 0 or not result.is_file():
            raise TrainingFailed(f"training process ended with exit code {process.exitcode} before finishing")
        return Trained.from_dict(json.loads(result.read_text()))


# ---------------------------------------------------------------------- ray: a task on a cluster
def pack(folder: Path) -> bytes:
    """A folder's files as an uncompressed tar (the form adapters and the base model travel in)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
    return buffer.getvalue()


def unpack(blob: bytes, folder: Path) -> Path:
    """Extract what `pack` made into `folder` (created; nothing may land outside it)."""
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
        tar.extractall(folder, filter="data")
    return folder


def fingerprint(folder: Path) -> str:
    """A cheap identity of a base model folder's contents: its files' names, sizes and modification times."""
    stats = [(p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
             for p in sorted(Path(folder).rglob("*")) if p.is_file()]
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]


def _unpacked_once(key: str, blob: Callable[[], bytes], scratch: Path) -> Path:
    """The folder `key` under scratch, unpacked from blob() the first time (atomically, so racing workers agree)."""
    final = scratch / key
    if not final.is_dir():
        partial = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=scratch))
        unpack(blob(), partial)
        try:
            os.rename(partial, final)
        except OSError:  # another worker got there first
            shutil.rmtree(partial, ignore_errors=True)
    return final


def _remote_train(snapshot: Snapshot, recipe: Recipe, base_key: str, base_ref: list[Any],
                  active: dict[str, tuple[str, bytes]]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The Ray task: train_candidates on the worker, with its own scratch; the candidates return as bytes."""
    import ray  # on the worker, where ray is installed by definition

    from training.candidates import train_candidates  # torch, on the worker

    scratch = Path(os.environ.get(SCRATCH_ENV) or tempfile.gettempdir()) / "shopbot-ray"
    scratch.mkdir(parents=True, exist_ok=True)
    base = _unpacked_once(f"base-{base_key}", lambda: ray.get(base_ref[0]), scratch)  # fetched only when missing
    with tempfile.TemporaryDirectory(prefix="shopbot-job-", dir=scratch) as work:
        folders = {task: ActiveAdapter(version, unpack(blob, Path(work) / "active" / task))
                   for task, (version, blob) in active.items()}
        out = Path(work) / "out"
        out.mkdir()
        trained = train_candidates(snapshot, recipe, base, folders, out, scratch / FEATURES)
        return trained.as_dict(), {c.task: pack(out / c.folder) for c in trained.candidates}


class RayCluster:
    """`train_candidates` as a Ray task on the cluster at `address`, its result fetched within the timeout."""

    def __init__(self, address: str, timeout_minutes: float) -> None:
        self.address = address
        self.timeout_minutes = timeout_minutes
        self._bases: dict[tuple[str, str, str], Any] = {}  # (ray job, folder, fingerprint) -> ObjectRef
        self._lock = threading.Lock()

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError as error:
            raise TrainingFailed('training.backend = "ray" needs ray: pip install \'shopbot[cluster]\'') from error
        with self._lock:
            if not ray.is_initialized():
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a shop's retrain never reports to Ray's servers
                where = self.address or "a new local Ray instance"
                try:
                    if self.address:
                        ray.init(address=self.address, logging_level=logging.WARNING)
                    else:  # a new instance (only then may it be told not to start a dashboard)
                        ray.init(include_dashboard=False, logging_level=logging.WARNING)
                except Exception as error:  # any failure to connect is the run's reason
                    raise TrainingFailed(f"could not connect to Ray at {where} (training.ray_address): "
                                         f"{type(error).__name__}: {error}") from error
        return ray

    def _base_ref(self, ray: Any, folder: Path) -> tuple[str, Any]:
        """(key, ObjectRef) of the base model's files, put into the object store once per process and base."""
        key = fingerprint(folder)
        slot = (ray.get_runtime_context().get_job_id(), str(folder), key)
        with self._lock:
            if slot not in self._bases:
                self._bases[slot] = ray.put(pack(folder))
            return key, self._bases[slot]

    def train(self, job: TrainJob) -> Trained:
        ray = self._ray()
        from ray.exceptions import GetTimeoutError, RayError

        base_key, base_ref = self._base_ref(ray, Path(job.base))
        active = {task: (adapter.version, pack(adapter.folder)) for task, adapter in job.active.items()}
        task = ray.remote(num_cpus=job.recipe.model.train_threads, max_retries=0)(_remote_train)
        ref = task.remote(ray.put(job.snapshot), job.recipe, base_key, [base_ref], active)
        try:
            result, blobs = ray.get(ref, timeout=self.timeout_minutes * 60)
        except GetTimeoutError:
            ray.cancel(ref, force=True)
            raise TrainingFailed(timeout_reason(self.timeout_minutes)) from None
        except RayError as error:
            raise TrainingFailed(f"the Ray training task failed: {_first_line(error)}") from error
        trained = Trained.from_dict(result)
        for candidate in trained.candidates:
            unpack(blobs[candidate.task], job.out / candidate.folder)
        return trained


def _first_line(error: BaseException) -> str:
    """A remote error's cause in one line (Ray wraps it with the remote traceback)."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"
    return str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__


@functools.cache
def ray_cluster(address: str, timeout_minutes: float) -> RayCluster:
    """The process's one connection per Ray address (it keeps the base model's object reference)."""
    return RayCluster(address, timeout_minutes)


def configured(settings: Settings, in_process: bool = False) -> Backend:
    """The backend `[training] backend` names, with the schedule's timeout; `in_process`: "local" trains right here
    (`shopbot train`, a process of its own) instead of in a child."""
    limit = settings.schedule.retrain_timeout_minutes
    if settings.training.backend == "ray":
        return ray_cluster(settings.training.ray_address, limit)
    return InProcess() if in_process else LocalChild(limit)
