"""Versioned adapter folders under root/<task>/<version>, checksummed, with their status kept in the store.

The store records each folder relative to root (paths.adapters), so a data folder that is moved,
renamed or restored from a backup elsewhere still finds its adapters.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storage.records import AdapterRecord, NotFoundError
from storage.store import Store
from vocabulary import TASKS, AdapterStatus

log = logging.getLogger(__name__)

ADAPTER_MANIFEST = "manifest.json"  # an adapter folder's task, version, metrics and file checksums
ROLLED_BACK = "rolled back"
PRUNED = "folder pruned"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class CorruptAdapterError(RuntimeError):
    """An adapter folder is missing, unreadable or does not match its manifest or the database."""


class RollbackError(RuntimeError):
    """There is nothing to roll back, or nothing intact to roll back to."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_checksum(files: Mapping[str, str]) -> str:
    """The adapter checksum: sha256 of the manifest's files map as canonical JSON."""
    return hashlib.sha256(json.dumps(dict(files), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def hash_folder(folder: Path) -> dict[str, str]:
    """{relative posix name: sha256} for every file below `folder` except the manifest; fsyncs them."""
    files: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            raise ValueError(f"{path} is a symlink; adapter folders hold plain files only")
        if path.is_file() and path.relative_to(folder).as_posix() not in (ADAPTER_MANIFEST, f"{ADAPTER_MANIFEST}.tmp"):
            files[path.relative_to(folder).as_posix()] = sha256_file(path)
            _fsync(path)
    return files


def _fsync(path: Path) -> None:
    """Flush a file or folder to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AdapterRegistry:
    """Publishes, verifies, promotes, rolls back and prunes adapter versions of each task."""

    def __init__(self, root: Path, store: Store, clock: Callable[[], datetime] = _utc_now) -> None:
        self.root = Path(root).resolve()
        self.store = store
        self.clock = clock

    def staging_dir(self, task: str) -> Path:
        """A fresh empty folder root/.staging/<task>-<random> for a builder to save an adapter into."""
        folder = self.root / ".staging" / f"{task}-{secrets.token_hex(8)}"
        folder.mkdir(parents=True)
        return folder

    def _taken(self, version: str, task: str) -> bool:
        try:
            self.store.adapters.get(version)
        except NotFoundError:
            return (self.root / task / version).exists()
        return True

    def new_version(self, task: str) -> str:
        """An unused version name such as "sentiment-20261123-203012" (UTC), with -2, -3... on a clash."""
        base = f"{task}-{self.clock().astimezone(UTC):%Y%m%d-%H%M%S}"
        version, suffix = base, 1
        while self._taken(version, task):
            suffix += 1
            version = f"{base}-{suffix}"
        return version

    def _check_build_dir(self, build_dir: Path) -> Path:
        folder, staging = Path(build_dir).resolve(), self.root / ".staging"
        if not folder.is_dir() or folder == staging or not folder.is_relative_to(staging):
            raise ValueError(f"build_dir {folder} must be a folder under {staging} (use staging_dir())")
        return folder

    def publish(self, task: str, build_dir: Path, manifest: Mapping[str, Any]) -> AdapterRecord:
        """Write manifest.json into build_dir, move it atomically to root/task/version, register a candidate."""
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        folder = self._check_build_dir(build_dir)
        if "files" in manifest or manifest.get("task", task) != task:
            raise ValueError("manifest must not carry 'files' and its 'task' must match the task published")
        if not isinstance(manifest.get("metrics"), Mapping) or not isinstance(manifest.get("base_model"), str):
            raise ValueError("manifest needs 'metrics' (a mapping) and 'base_model' (a string)")
        content = {**manifest, "task": task, "version": manifest.get("version") or self.new_version(task)}
        content.setdefault("created_at", self.clock().astimezone(UTC).isoformat())
        version = content["version"]
        final = self.root / task / version
        if not isinstance(version, str) or not _SAFE_NAME.fullmatch(version) or self._taken(version, task):
            raise ValueError(f"version {version!r} is not a safe folder name or is already published")
        content["files"] = hash_folder(folder)
        if not content["files"]:
            raise ValueError(f"build_dir {folder} holds no files to publish")
        (folder / f"{ADAPTER_MANIFEST}.tmp").write_text(json.dumps(content, indent=2, sort_keys=True, ensure_ascii=False))
        _fsync(folder / f"{ADAPTER_MANIFEST}.tmp")
        os.replace(folder / f"{ADAPTER_MANIFEST}.tmp", folder / ADAPTER_MANIFEST)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(folder, final)  # atomic on one filesystem; _taken() checked nothing is there
        _fsync(final.parent)
        try:
            record = self.store.adapters.add_candidate(
                version, task, f"{task}/{version}", content["metrics"], files_checksum(content["files"]),
                content["base_model"], content.get("snapshot_id"))
        except BaseException:
            os.rename(final, folder)  # no unregistered folder left at the final path
            raise
        log.info("published %s adapter %s at %s", task, version, final)
        return record

    def folder(self, record: AdapterRecord) -> Path:
        """Where the adapter's files are: its stored path, relative to root."""
        return self.root / record.path  # an absolute path (a row the migration could not relate to root) stays as is

    def _record(self, record_or_version: AdapterRecord | str) -> AdapterRecord:
        version = record_or_version if isinstance(record_or_version, str) else record_or_version.version
        return self.store.adapters.get(version)

    def _corrupt(self, version: str, problem: str) -> CorruptAdapterError:
        message = f"adapter {version} is corrupt: {problem}"
        log.error(message)
        return CorruptAdapterError(message)

    def verify(self, record_or_version: AdapterRecord | str) -> Path:
        """The adapter's folder after checking every file against manifest.json and the db checksum."""
        record = self._record(record_or_version)
        folder = self.folder(record)
        if not folder.is_dir():
            raise self._corrupt(record.version, f"folder {folder} is missing")
        try:
            manifest = json.loads((folder / ADAPTER_MANIFEST).read_text())
            files = manifest["files"]
            if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
                raise TypeError("'files' is not a map of names to sha256 strings")
            if manifest.get("version") != record.version:
                raise ValueError(f"it names version {manifest.get('version')!r}")
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise self._corrupt(record.version, f"{folder / ADAPTER_MANIFEST} is unreadable ({error})") from error
        if files_checksum(files) != record.checksum:
            raise self._corrupt(record.version, f"{folder / ADAPTER_MANIFEST} lists files that do not match the "
                                                f"database checksum {record.checksum[:12]}")
        for name, expected in sorted(files.items()):
            path = folder / name
            if not path.resolve().is_relative_to(folder.resolve()) or not path.is_file():
                raise self._corrupt(record.version, f"file {name} is missing from {folder}")
            actual = sha256_file(path)
            if actual != expected:
                raise self._corrupt(record.version, f"file {name} has sha256 {actual[:12]}, "
                                                    f"manifest says {expected[:12]} ({folder})")
        return folder

    def _is_intact(self, record: AdapterRecord) -> bool:
        try:
            self.verify(record)
        except CorruptAdapterError:
            return False
        return True

    def active(self, task: str) -> AdapterRecord | None:
        """The task's active adapter record, unverified."""
        return self.store.adapters.active(task)

    def promote(self, version: str, reasons: Iterable[str]) -> None:
        """Verify, make this version active and retire the task's previous active one, in one transaction."""
        record = self._record(version)
        self.verify(record)
        current = self.active(record.task)
        with self.store.transaction():
            self.store.adapters.set_status(version, AdapterStatus.ACTIVE, tuple(reasons))
            if current is not None and current.version != version:
                self.store.adapters.set_status(current.version, AdapterStatus.RETIRED, (f"superseded by {version}",))
        log.info("promoted %s adapter %s (was %s)", record.task, version, current and current.version)

    def reject(self, version: str, reasons: Iterable[str]) -> None:
        """Mark a non-active version rejected (roll back an active one instead)."""
        if self._record(version).status == AdapterStatus.ACTIVE:
            raise ValueError(f"adapter {version} is active; roll it back instead of rejecting it")
        self.store.adapters.set_status(version, AdapterStatus.REJECTED, tuple(reasons))

    def _fallbacks(self, task: str) -> list[AdapterRecord]:
        """Retired, once-promoted, not rolled-back nor pruned versions of a task, most recently promoted first."""
        retired = [record for record in self.store.adapters.history(task)
                   if record.status == AdapterStatus.RETIRED and record.promoted_at
                   and ROLLED_BACK not in record.reasons and PRUNED not in record.reasons]
        return sorted(retired, key=lambda record: (record.promoted_at, record.id), reverse=True)

    def rollback_target(self, task: str) -> AdapterRecord | None:
        """The intact version a rollback would restore: the most recently promoted retired one."""
        return next((record for record in self._fallbacks(task) if self._is_intact(record)), None)

    def active_verified(self, task: str) -> tuple[AdapterRecord, Path] | None:
        """The active adapter and its folder if intact, else the newest intact fallback; never a corrupt one."""
        active = self.active(task)
        if active is None:
            return None
        for record in [active, *self._fallbacks(task)]:
            if self._is_intact(record):
                if record.version != active.version:
                    log.error("active %s adapter %s is corrupt; serving %s instead", task, active.version,
                              record.version)
                return record, self.folder(record)
        log.error("active %s adapter %s is corrupt and no intact earlier adapter exists", task, active.version)
        return None

    def all_active_verified(self) -> dict[str, tuple[AdapterRecord, Path]]:
        """`active_verified` of every task that has one: {task: (record, folder)}; an unusable one is logged, left out."""
        found: dict[str, tuple[AdapterRecord, Path]] = {}
        for task in TASKS:
            try:
                verified = self.active_verified(task)
            except CorruptAdapterError as exc:
                log.error("no usable %s adapter: %s", task, exc)
                continue
            if verified is not None:
                found[task] = verified
        return found

    def rollback(self, task: str) -> AdapterRecord:
        """Retire the active version ("rolled back") and restore the previous intact one; returns it."""
        active = self.active(task)
        if active is None:
            raise RollbackError(f"cannot roll back {task}: no adapter is active")
        target = self.rollback_target(task)
        if target is None:
            raise RollbackError(f"cannot roll back {task} adapter {active.version}: no earlier intact adapter")
        with self.store.transaction():
            self.store.adapters.set_status(target.version, AdapterStatus.ACTIVE, (f"restored by rolling back {active.version}",))
            self.store.adapters.set_status(active.version, AdapterStatus.RETIRED, (ROLLED_BACK, *active.reasons))
        log.warning("rolled back %s adapter %s to %s", task, active.version, target.version)
        return self.store.adapters.get(target.version)

    def prune(self, keep: int = 5) -> list[str]:
        """Delete adapter folders per task, keeping the active one, the rollback target and the newest `keep` others.

        With keep ≥ 1 a candidate just published (the newest other) is kept while its process gates it.
        """
        if keep < 0:
            raise ValueError(f"keep must be ≥ 0, got {keep}")
        deleted: list[str] = []
        for task in TASKS:
            spared = {record.version for record in (self.active(task), self.rollback_target(task)) if record}
            others = [record for record in self.store.adapters.history(task)
                      if record.version not in spared and record.status != AdapterStatus.ACTIVE
                      and self.folder(record).is_dir()]
            for record in others[keep:]:
                folder = self.folder(record)
                if not folder.resolve().is_relative_to(self.root):
                    log.warning("not pruning %s: %s is outside %s", record.version, folder, self.root)
                    continue
                trash = self.root / ".trash" / f"{record.version}-{secrets.token_hex(4)}"
                trash.parent.mkdir(parents=True, exist_ok=True)
                os.rename(folder, trash)  # gone from the final path at once, then deleted
                shutil.rmtree(trash, ignore_errors=True)
                self.store.adapters.set_status(record.version, record.status, (*record.reasons, PRUNED))
                deleted.append(record.version)
        log.info("pruned %d adapter folders: %s", len(deleted), ", ".join(deleted) or "none")
        return deleted
