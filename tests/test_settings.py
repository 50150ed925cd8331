"""Tests for settings.py: defaults, validation messages, token handling, path resolution."""

from __future__ import annotations

import dataclasses
from datetime import time
from pathlib import Path

import pytest

from settings import ConfigError, Settings, load_settings, settings_from_dict

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config.toml"


def write_config(folder: Path, text: str) -> Path:
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_repo_config_loads_with_documented_defaults() -> None:
    settings = load_settings(REPO_CONFIG, env={})
    assert settings == settings_from_dict({}, REPO_CONFIG.parent, env={})
    assert settings.shop.languages == ("zh", "en")
    assert settings.default_language == "zh"
    assert settings.thresholds.faq_accuracy == 0.85
    assert settings.schedule.time_of_day.replace(tzinfo=None) == time(3, 0)
    assert settings.token is None


def test_every_key_in_repo_config_has_a_comment() -> None:
    for line in REPO_CONFIG.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            assert "#" in line, f"undocumented key: {line}"


def test_minimal_file_takes_defaults(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, '[shop]\nname = "Tea"\n'), env={})
    assert settings.shop.name == "Tea"
    assert settings.model.max_length == 128
    assert settings.privacy.retention_days == 180


def test_empty_file_is_valid(tmp_path: Path) -> None:
    assert isinstance(load_settings(write_config(tmp_path, ""), env={}), Settings)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"thresholds": {"faq_accuracy": 1.5}}, "thresholds.faq_accuracy: must be between 0 and 1, got 1.5"),
        ({"thresholds": {"answer_confidence": -0.1}}, "thresholds.answer_confidence: must be between 0 and 1"),
        ({"thresholds": {"min_new_examples": -1}}, "thresholds.min_new_examples: must be 0 or more"),
        ({"thresholds": {"faq_accuracy": "high"}}, "thresholds.faq_accuracy: must be a number"),
        ({"shop": {"languages": ["zh", "fr"]}}, "shop.languages: unknown language 'fr'"),
        ({"shop": {"languages": []}}, "shop.languages: must list at least one language"),
        ({"shop": {"languages": "zh"}}, "shop.languages: must be a list"),
        ({"shop": {"name": "  "}}, "shop.name: must not be empty"),
        ({"roles": {"owner_ids": ["123"]}}, "roles.owner_ids[0]: must be an integer, got '123'"),
        ({"roles": {"staff_ids": [-5]}}, "roles.staff_ids: Telegram user ids are positive"),
        ({"roles": {"staff_chat_id": 1.5}}, "roles.staff_chat_id: must be an integer"),
        ({"roles": {"faq_editors": "everyone"}}, "roles.faq_editors: must be one of owners, staff, got 'everyone'"),
        ({"model": {"device": "tpu"}}, "model.device: must be one of auto, cpu, cuda, got 'tpu'"),
        ({"model": {"load_in_4bit": "yes"}}, "model.load_in_4bit: must be true or false"),
        ({"model": {"device": "cpu", "load_in_4bit": True}}, "model.load_in_4bit: needs CUDA"),
        ({"model": {"train_threads": 0}}, "model.train_threads: must be at least 1"),
        ({"model": {"max_length": 2}}, "model.max_length: must be between 8 and 4096"),
        ({"schedule": {"weekday": "funday"}}, "schedule.weekday: must be one of monday"),
        ({"schedule": {"time": "25:00"}}, "schedule.time: must be HH:MM"),
        ({"schedule": {"time": "3:00"}}, "schedule.time: must be HH:MM"),
        ({"schedule": {"timezone": "Mars/Olympus"}}, "schedule.timezone: unknown time zone"),
        ({"schedule": {"retrain_timeout_minutes": 0}}, "schedule.retrain_timeout_minutes: must be more than 0"),
        ({"schedule": {"retrain_timeout_minutes": 20000}}, "schedule.retrain_timeout_minutes: must be more than 0"),
        ({"schedule": {"keep_adapters": 0}}, "schedule.keep_adapters: must be at least 1"),
        ({"training": {"backend": "slurm"}}, "training.backend: must be one of local, ray, got 'slurm'"),
        ({"training": {"ray_address": "http://head:8265"}}, "training.ray_address: must be \"auto\", \"\" (a new local"),
        ({"privacy": {"retention_days": 0}}, "privacy.retention_days: must be at least 1"),
        ({"telegram": {"mode": "carrier-pigeon"}}, "telegram.mode: must be one of polling, webhook"),
        ({"telegram": {"mode": "webhook"}}, "telegram.webhook_url: must be an https:// URL"),
        ({"telegram": {"webhook_port": 70000}}, "telegram.webhook_port: must be between 1 and 65535"),
        ({"paths": {"database": ""}}, "paths.database: must be a non-empty path"),
        ({"shop": "Sweet Drops"}, "shop: must be a table"),
    ],
)
def test_bad_values_name_the_dotted_key(tmp_path: Path, data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        settings_from_dict(data, tmp_path, env={})
    assert message in str(error.value)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_unknown_key_suggests_the_closest(tmp_path: Path) -> None:
    expected = r"thresholds\.faq_acuracy: unknown key; did you mean thresholds\.faq_accuracy\?"
    with pytest.raises(ConfigError, match=expected):
        settings_from_dict({"thresholds": {"faq_acuracy": 0.9}}, tmp_path, env={})


def test_unknown_key_without_close_match_lists_known_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"schedule\.zzz: unknown key; known: schedule\.weekday"):
        settings_from_dict({"schedule": {"zzz": 1}}, tmp_path, env={})


def test_unknown_section_suggests_the_closest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"treshold: unknown section; did you mean \[thresholds\]\?"):
        settings_from_dict({"treshold": {}}, tmp_path, env={})


def test_unknown_key_in_file_is_reported(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[model]\ndevise = 'cpu'\n")
    with pytest.raises(ConfigError, match=r"model.devise: unknown key; did you mean model.device"):
        load_settings(path, env={})


def test_token_comes_from_env_only_and_is_hidden(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, ""), env={"TELEGRAM_BOT_TOKEN": "123:secret"})
    assert settings.token == "123:secret"
    assert "secret" not in repr(settings)
    assert load_settings(tmp_path / "config.toml", env={"TELEGRAM_BOT_TOKEN": ""}).token is None


@pytest.mark.parametrize("text", ['token = "123:abc"\n', '[telegram]\ntoken = "123:abc"\n'])
def test_token_in_file_is_an_error_pointing_to_env(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN environment variable"):
        load_settings(write_config(tmp_path, text), env={"TELEGRAM_BOT_TOKEN": "x"})


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    folder.mkdir()
    path = write_config(folder, '[paths]\ndatabase = "data/bot.db"\nreports = "/srv/reports"\n')
    settings = load_settings(path, env={})
    assert settings.paths.database == folder.resolve() / "data" / "bot.db"
    assert settings.paths.reports == Path("/srv/reports")
    assert settings.paths.adapters == folder.resolve() / "var" / "adapters"
    assert settings.shop.demo_data == folder.resolve() / "data" / "demo"
    assert all(p.is_absolute() for p in dataclasses.astuple(settings.paths))


def test_path_comes_from_shopbot_config_env(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[shop]\nname = "From env"\n')
    assert load_settings(env={"SHOPBOT_CONFIG": str(path)}).shop.name == "From env"


def test_explicit_path_wins_over_env(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[shop]\nname = "Explicit"\n')
    assert load_settings(path, env={"SHOPBOT_CONFIG": "/nonexistent.toml"}).shop.name == "Explicit"


def test_default_is_config_toml_in_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, '[shop]\nname = "Cwd"\n')
    monkeypatch.chdir(tmp_path)
    assert load_settings(env={}).shop.name == "Cwd"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml", env={})


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write_config(tmp_path, "[shop\n"), env={})


def test_roles_helpers(make_settings) -> None:
    settings = make_settings(roles={"owner_ids": [1], "staff_ids": [2, 3], "staff_chat_id": -100123})
    assert settings.is_owner(1) and not settings.is_owner(2)
    assert settings.is_staff(1) and settings.is_staff(3) and not settings.is_staff(4)
    assert settings.roles.staff_chat_id == -100123
    assert settings.roles.faq_editors == "owners" and settings.may_edit_faq(1) and not settings.may_edit_faq(2)
    staff_too = make_settings(roles={"owner_ids": [1], "staff_ids": [2], "faq_editors": "staff"})
    assert staff_too.may_edit_faq(1) and staff_too.may_edit_faq(2) and not staff_too.may_edit_faq(4)


def test_lists_become_tuples_and_ints_become_floats(make_settings) -> None:
    settings = make_settings(shop={"languages": ["en"]}, thresholds={"faq_accuracy": 1})
    assert settings.shop.languages == ("en",)
    assert settings.default_language == "en"
    assert settings.thresholds.faq_accuracy == 1.0 and isinstance(settings.thresholds.faq_accuracy, float)


def test_settings_are_frozen(make_settings) -> None:
    settings = make_settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.thresholds.faq_accuracy = 0.1  # type: ignore[misc]


def test_make_settings_paths_live_in_tmp(make_settings, tmp_path: Path) -> None:
    assert make_settings().paths.database == tmp_path.resolve() / "var" / "shopbot.db"


def test_webhook_mode_with_https_url(make_settings) -> None:
    settings = make_settings(telegram={"mode": "webhook", "webhook_url": "https://example.com/hook"})
    assert settings.telegram.mode == "webhook"


def test_training_runs_locally_unless_ray_is_chosen_and_ray_addresses_are_checked(tmp_path: Path) -> None:
    assert settings_from_dict({}, tmp_path, env={}).training.backend == "local"
    for address in ("auto", "", "10.0.0.5:6379", "ray://head.cluster:10001", "[::1]:6379"):
        chosen = settings_from_dict({"training": {"backend": "ray", "ray_address": address}}, tmp_path, env={})
        assert (chosen.training.backend, chosen.training.ray_address) == ("ray", address)
