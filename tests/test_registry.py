"""Adapter registry: publish → verify → promote → rollback → prune, with dummy adapter files."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from storage.records import AdapterRecord, NotFoundError
from storage.store import Store
from training.registry import (
    ADAPTER_MANIFEST,
    PRUNED,
    ROLLED_BACK,
    AdapterRegistry,
    CorruptAdapterError,
    RollbackError,
    files_checksum,
    sha256_file,
)

FILES = {"adapter_config.json": b'{"r": 8}', "adapter_model.safetensors": b"\x00weights\x01" * 64,
         "head/classifier.pt": b"head-bytes"}
FIXED = datetime(2026, 11, 23, 20, 30, 12, tzinfo=UTC)


@pytest.fixture
def registry(tmp_path: Path, file_store: Store) -> AdapterRegistry:
    return AdapterRegistry(tmp_path / "models", file_store)


def build(registry: AdapterRegistry, task: str = "sentiment", files: dict[str, bytes] | None = None) -> Path:
    """What a trainer does: save adapter files into a fresh staging folder."""
    folder = registry.staging_dir(task)
    for name, content in (files or FILES).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    return folder


def publish(registry: AdapterRegistry, task: str = "sentiment", accuracy: float = 0.9,
            version: str | None = None) -> AdapterRecord:
    manifest = {"metrics": {"accuracy": accuracy}, "train_config": {"epochs": 3, "lr": 2e-4},
                "snapshot_id": "snap-1", "base_model": "multilingual-e5-small"}
    if version is not None:
        manifest["version"] = version
    return registry.publish(task, build(registry, task), manifest)


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


# --- versions and publishing ---------------------------------------------------------------------------------


def test_new_version_is_utc_stamped_and_unique(tmp_path: Path, file_store: Store) -> None:
    registry = AdapterRegistry(tmp_path / "models", file_store, clock=lambda: FIXED)
    assert registry.new_version("sentiment") == "sentiment-20261123-203012"
    assert publish(registry).version == "sentiment-20261123-203012"
    assert registry.new_version("sentiment") == "sentiment-20261123-203012-2"
    (tmp_path / "models" / "sentiment" / "sentiment-20261123-203012-2").mkdir()  # a folder alone also counts
    assert registry.new_version("sentiment") == "sentiment-20261123-203012-3"
    assert registry.new_version("faq") == "faq-20261123-203012"


def test_publish_moves_the_folder_and_registers_a_candidate(registry: AdapterRegistry) -> None:
    staging = build(registry)
    record = registry.publish("sentiment", staging, {"metrics": {"accuracy": 0.91}, "train_config": {"epochs": 3},
                                                     "snapshot_id": "snap-7", "base_model": "e5-small"})
    final = registry.root / "sentiment" / record.version
    assert not staging.exists() and final.is_dir()
    assert record.status == "candidate" and registry.folder(record) == final and record.snapshot_id == "snap-7"
    assert record.path == Path("sentiment", record.version)  # stored relative to the registry root
    assert record.metrics == {"accuracy": 0.91} and record.base_model == "e5-small"
    manifest = json.loads((final / ADAPTER_MANIFEST).read_text())
    assert manifest["files"] == {name: sha256_file(final / name) for name in FILES}
    assert {"version", "task", "metrics", "train_config", "snapshot_id", "base_model", "created_at"} <= set(manifest)
    assert manifest["version"] == record.version and manifest["task"] == "sentiment"
    assert record.checksum == files_checksum(manifest["files"])
    assert sorted(path.name for path in (registry.root / ".staging").iterdir()) == []


def test_publish_refuses_bad_input(registry: AdapterRegistry, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "a.bin").write_bytes(b"x")
    manifest = {"metrics": {"accuracy": 0.9}, "base_model": "e5"}
    with pytest.raises(ValueError, match="must be a folder under"):
        registry.publish("sentiment", outside, manifest)
    with pytest.raises(ValueError, match="no files"):
        registry.publish("sentiment", registry.staging_dir("sentiment"), manifest)
    with pytest.raises(ValueError, match="'files'"):
        registry.publish("sentiment", build(registry), {**manifest, "files": {}})
    with pytest.raises(ValueError, match="'base_model'"):
        registry.publish("sentiment", build(registry), {"metrics": {}})
    with pytest.raises(ValueError, match="task must be one of"):
        registry.publish("reviews", build(registry), manifest)
    with pytest.raises(ValueError, match="safe folder name"):
        registry.publish("sentiment", build(registry), {**manifest, "version": "../escape"})
    taken = publish(registry).version
    with pytest.raises(ValueError, match="already published"):
        registry.publish("sentiment", build(registry), {**manifest, "version": taken})
    assert [record.version for record in registry.store.adapters.history("sentiment")] == [taken]


def test_failed_registration_leaves_no_folder_at_the_final_path(registry: AdapterRegistry,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(registry.store.adapters, "add_candidate", broken)
    staging = build(registry)
    with pytest.raises(RuntimeError, match="locked"):
        registry.publish("sentiment", staging, {"metrics": {}, "base_model": "e5", "version": "sentiment-x"})
    assert not (registry.root / "sentiment" / "sentiment-x").exists()
    assert staging.is_dir()  # back where the builder left it
    with pytest.raises(NotFoundError):
        registry.store.adapters.get("sentiment-x")


def test_failed_move_or_unserialisable_manifest_leaves_nothing(registry: AdapterRegistry,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TypeError):
        registry.publish("sentiment", build(registry), {"metrics": {}, "base_model": "e5", "version": "v-a",
                                                        "train_config": {"when": object()}})
    monkeypatch.setattr(os, "rename", lambda *args: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        registry.publish("sentiment", build(registry), {"metrics": {}, "base_model": "e5", "version": "v-b"})
    assert not (registry.root / "sentiment" / "v-a").exists() and not (registry.root / "sentiment" / "v-b").exists()
    assert registry.store.adapters.history("sentiment") == []


def test_half_written_staging_dir_is_never_visible(registry: AdapterRegistry) -> None:
    crashed = registry.staging_dir("sentiment")
    (crashed / "adapter_model.safetensors").write_bytes(b"half of the wei")  # trainer died here
    assert registry.active("sentiment") is None and registry.active_verified("sentiment") is None
    assert registry.store.adapters.history("sentiment") == []
    assert not (registry.root / "sentiment").exists()
    record = publish(registry)
    assert [path.name for path in (registry.root / "sentiment").iterdir()] == [record.version]
    assert registry.prune(keep=0) == [record.version] and crashed.is_dir()  # staging is the builder's, not pruned


# --- verify --------------------------------------------------------------------------------------------------


def test_verify_returns_the_folder_of_an_intact_adapter(registry: AdapterRegistry) -> None:
    record = publish(registry)
    assert registry.verify(record) == registry.folder(record)
    assert registry.verify(record.version) == registry.folder(record)


def test_flipped_byte_is_corrupt_and_named(registry: AdapterRegistry, caplog: pytest.LogCaptureFixture) -> None:
    record = publish(registry)
    flip_a_byte(registry.folder(record) / "adapter_model.safetensors")
    with caplog.at_level(logging.ERROR), pytest.raises(CorruptAdapterError) as error:
        registry.verify(record.version)
    assert record.version in str(error.value) and "adapter_model.safetensors" in str(error.value)
    assert any(record.version in message and r.levelno == logging.ERROR
               for r in caplog.records for message in [r.getMessage()])


@pytest.mark.parametrize("damage", ["missing file", "missing folder", "garbage manifest", "edited manifest",
                                    "escaping manifest", "swapped manifest"])
def test_every_kind_of_damage_is_corrupt(registry: AdapterRegistry, damage: str) -> None:
    record = publish(registry)
    other = publish(registry)
    manifest_path = registry.folder(record) / ADAPTER_MANIFEST
    manifest = json.loads(manifest_path.read_text())
    if damage == "missing file":
        (registry.folder(record) / "head" / "classifier.pt").unlink()
    elif damage == "missing folder":
        os.rename(registry.folder(record), registry.root / "moved")
    elif damage == "garbage manifest":
        manifest_path.write_text("{not json")
    elif damage == "edited manifest":  # consistent with the files, but not with the database checksum
        flip_a_byte(registry.folder(record) / "adapter_config.json")
        manifest["files"]["adapter_config.json"] = sha256_file(registry.folder(record) / "adapter_config.json")
        manifest_path.write_text(json.dumps(manifest))
    elif damage == "escaping manifest":
        manifest["files"] = {"../../outside": "0" * 64}
        manifest_path.write_text(json.dumps(manifest))
    else:
        manifest_path.write_text((registry.folder(other) / ADAPTER_MANIFEST).read_text())
    with pytest.raises(CorruptAdapterError, match=record.version):
        registry.verify(record)
    assert registry.verify(other) == registry.folder(other)


# --- promote, reject, rollback -------------------------------------------------------------------------------


def test_promote_retires_the_previous_active_one(registry: AdapterRegistry) -> None:
    first, second = publish(registry), publish(registry)
    registry.promote(first.version, ["accuracy 0.900 ≥ threshold 0.850"])
    assert registry.active("sentiment").version == first.version
    assert registry.active("sentiment").reasons == ("accuracy 0.900 ≥ threshold 0.850",)
    registry.promote(second.version, ["better"])
    assert registry.active("sentiment").version == second.version
    retired = registry.store.adapters.get(first.version)
    assert retired.status == "retired" and retired.reasons == (f"superseded by {second.version}",)
    assert registry.active("faq") is None


def test_promote_is_one_transaction(registry: AdapterRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = publish(registry), publish(registry)
    registry.promote(first.version, [])
    real_set_status = registry.store.adapters.set_status

    def failing_retire(version: str, status: str, reasons: tuple[str, ...] = ()) -> AdapterRecord:
        if status == "retired":
            raise RuntimeError("crash between the two updates")
        return real_set_status(version, status, reasons)

    monkeypatch.setattr(registry.store.adapters, "set_status", failing_retire)
    with pytest.raises(RuntimeError, match="crash"):
        registry.promote(second.version, ["better"])
    assert registry.active("sentiment").version == first.version
    assert registry.store.adapters.get(second.version).status == "candidate"


def test_promoting_a_corrupt_adapter_fails_and_changes_nothing(registry: AdapterRegistry) -> None:
    good, bad = publish(registry), publish(registry)
    registry.promote(good.version, [])
    flip_a_byte(registry.folder(bad) / "adapter_config.json")
    with pytest.raises(CorruptAdapterError):
        registry.promote(bad.version, [])
    assert registry.active("sentiment").version == good.version
    assert registry.store.adapters.get(bad.version).status == "candidate"


def test_reject(registry: AdapterRegistry) -> None:
    active, candidate = publish(registry), publish(registry)
    registry.promote(active.version, [])
    registry.reject(candidate.version, ["accuracy 0.800 < threshold 0.850"])
    rejected = registry.store.adapters.get(candidate.version)
    assert rejected.status == "rejected" and rejected.reasons == ("accuracy 0.800 < threshold 0.850",)
    with pytest.raises(ValueError, match="roll it back"):
        registry.reject(active.version, [])


def test_publish_verify_promote_rollback_prune_lifecycle(registry: AdapterRegistry) -> None:
    oldest, older, newest = publish(registry), publish(registry), publish(registry)
    for record in (oldest, older, newest):
        assert registry.verify(record) == registry.folder(record)
        registry.promote(record.version, ["passed the gate"])
    assert registry.rollback_target("sentiment").version == older.version
    restored = registry.rollback("sentiment")
    assert restored.version == older.version and restored.status == "active"
    rolled_back = registry.store.adapters.get(newest.version)
    assert rolled_back.status == "retired" and rolled_back.reasons[0] == ROLLED_BACK
    # a second rollback goes further back, never forward to the version just rolled back
    assert registry.rollback("sentiment").version == oldest.version
    with pytest.raises(RollbackError, match="no earlier intact adapter"):
        registry.rollback("sentiment")
    assert registry.prune(keep=1) == [older.version]  # newest is within keep=1, oldest is active
    assert not registry.folder(older).exists() and registry.folder(oldest).is_dir() and registry.folder(newest).is_dir()
    assert PRUNED in registry.store.adapters.get(older.version).reasons
    assert registry.prune(keep=1) == []


def test_rollback_without_an_active_adapter_is_a_clear_error(registry: AdapterRegistry) -> None:
    publish(registry)
    with pytest.raises(RollbackError, match="no adapter is active"):
        registry.rollback("sentiment")


def test_rollback_skips_a_corrupt_target(registry: AdapterRegistry) -> None:
    first, second, third = publish(registry), publish(registry), publish(registry)
    for record in (first, second, third):
        registry.promote(record.version, [])
    flip_a_byte(registry.folder(second) / "adapter_model.safetensors")
    assert registry.rollback("sentiment").version == first.version


# --- active_verified -----------------------------------------------------------------------------------------


def test_active_verified_returns_the_intact_active_one(registry: AdapterRegistry) -> None:
    assert registry.active_verified("sentiment") is None
    record = publish(registry)
    registry.promote(record.version, [])
    found, path = registry.active_verified("sentiment")
    assert found.version == record.version and path == registry.folder(record)


def test_active_verified_falls_back_when_the_active_folder_is_corrupt(
        registry: AdapterRegistry, caplog: pytest.LogCaptureFixture) -> None:
    first, second, third = publish(registry), publish(registry), publish(registry)
    for record in (first, second, third):
        registry.promote(record.version, [])
    flip_a_byte(registry.folder(third) / "head" / "classifier.pt")
    with caplog.at_level(logging.ERROR):
        found, path = registry.active_verified("sentiment")
    assert found.version == second.version and path == registry.folder(second)
    assert any("serving" in r.getMessage() and third.version in r.getMessage() for r in caplog.records)
    assert registry.active("sentiment").version == third.version  # reading never changes statuses
    flip_a_byte(registry.folder(second) / "adapter_config.json")
    assert registry.active_verified("sentiment")[0].version == first.version
    (registry.folder(first) / ADAPTER_MANIFEST).unlink()
    assert registry.active_verified("sentiment") is None  # never a corrupt folder


# --- prune ---------------------------------------------------------------------------------------------------


def test_prune_keeps_the_newest_the_active_and_the_rollback_target(registry: AdapterRegistry) -> None:
    records = [publish(registry, accuracy=0.8 + i / 100) for i in range(8)]
    registry.promote(records[0].version, [])
    registry.promote(records[1].version, [])  # active; records[0] is the rollback target
    registry.reject(records[2].version, ["too weak"])
    faq = [publish(registry, task="faq") for _ in range(3)]
    deleted = registry.prune(keep=3)
    assert deleted == [records[4].version, records[3].version, records[2].version]
    for record in records:
        assert registry.folder(record).is_dir() == (record.version not in deleted)
    assert all(registry.folder(record).is_dir() for record in faq)
    assert registry.rollback("sentiment").version == records[0].version
    with pytest.raises(ValueError):
        registry.prune(keep=-1)


def test_prune_keeps_that_many_besides_the_active_and_the_previous(registry: AdapterRegistry) -> None:
    records = [publish(registry) for _ in range(5)]
    for record in records[3:]:
        registry.promote(record.version, [])  # records[4] active, records[3] the rollback target: the newest two
    assert registry.prune(keep=1) == [records[1].version, records[0].version]
    assert [registry.folder(record).is_dir() for record in records] == [False, False, True, True, True]
    assert registry.prune(keep=0) == [records[2].version]


def test_pruned_versions_fail_verification_and_are_skipped_quietly(registry: AdapterRegistry) -> None:
    records = [publish(registry) for _ in range(3)]
    for record in records:
        registry.promote(record.version, [])
    assert registry.prune(keep=0) == [records[0].version]
    with pytest.raises(CorruptAdapterError, match="missing"):
        registry.verify(records[0])
    assert registry.rollback("sentiment").version == records[1].version
    with pytest.raises(RollbackError):
        registry.rollback("sentiment")


# --- stored paths ----------------------------------------------------------------------------------------------


def test_old_absolute_paths_are_migrated_and_a_moved_folder_still_verifies(tmp_path: Path) -> None:
    data = tmp_path / "var"
    with Store(data / "shopbot.db") as store:  # as the registry stored paths before: absolute
        registry = AdapterRegistry(data / "adapters", store)
        record = publish(registry)
        registry.promote(record.version, [])
        store.adapters.table.update(record.id, {"path": str(data / "adapters" / "sentiment" / record.version)})
        elsewhere = publish(registry, version="sentiment-elsewhere")
        store.adapters.table.update(elsewhere.id, {"path": "/mnt/old/adapters/not-its-name"})
        store.db.table("_sqlite_migrations").delete_where("name = ?", ["m003_relative_adapter_paths"])
    moved = data.rename(tmp_path / "restored")
    with Store(moved / "shopbot.db") as store:  # opening migrates
        registry = AdapterRegistry(moved / "adapters", store)
        assert store.adapters.get(record.version).path == Path("sentiment", record.version)
        assert store.adapters.get(elsewhere.version).path == Path("/mnt/old/adapters/not-its-name")  # left alone
        assert registry.active_verified("sentiment") == (store.adapters.get(record.version),
                                                         moved / "adapters" / "sentiment" / record.version)
