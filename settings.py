"""Typed, validated shopbot configuration loaded from config.toml.

One module on purpose (~560 lines): it is the reference of every key, with its type, default and
check side by side, read once at start-up; splitting it would scatter that reference. The hosting
file of `shopbot serve --shops DIR` (many shops in one process) is at the end.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time as clock_time  # ScheduleSettings has a field called `time`
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

KNOWN_LANGUAGES = ("zh", "en")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
TRUNK_DTYPES = ("auto", "float32", "bfloat16", "int8")
DEVICES = ("auto", "cpu", "cuda")
RUNTIMES = ("auto", "torch", "onnx")  # how the bot computes: auto = ONNX Runtime on the CPU, torch on CUDA
TELEGRAM_MODES = ("polling", "webhook")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # an environment variable's name (telegram.token_env)
FAQ_EDITORS = ("owners", "staff")
MIRROR_POLICIES = ("all", "policy")
TRAINING_BACKENDS = ("local", "ray")
_RAY_ADDRESS = re.compile(r"(ray://)?[A-Za-z0-9.-]+:\d{1,5}|\[[0-9A-Fa-f:]+\]:\d{1,5}")  # host:port, ray://host:port
TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
WEBHOOK_SECRET_ENV = "TELEGRAM_WEBHOOK_SECRET"
TELEGRAM_API_URL = "https://api.telegram.org/bot"
TELEGRAM_FILE_URL = "https://api.telegram.org/file/bot"
CONFIG_ENV = "SHOPBOT_CONFIG"

_HH_MM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_OPENING = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)")  # "10:00-22:00"; 24:00 = midnight
CLOSED = "closed"
WEBHOOK_SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")  # Telegram's rule for setWebhook's secret_token


class ConfigError(ValueError):
    """The configuration is invalid; the message names the dotted key."""


def _fail(key: str, problem: str) -> typing.NoReturn:
    raise ConfigError(f"{key}: {problem}")


def _coerce(key: str, hint: Any, value: Any) -> Any:
    """Check `value` against a field type hint and return it in canonical form."""
    if hint is bool:
        if not isinstance(value, bool):
            _fail(key, f"must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(key, f"must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(key, f"must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            _fail(key, f"must be a string, got {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, (str, os.PathLike)) or str(value) == "":
            _fail(key, f"must be a non-empty path string, got {value!r}")
        return Path(value)
    if typing.get_origin(hint) is tuple:
        item_hint = typing.get_args(hint)[0]
        if not isinstance(value, (list, tuple)):
            _fail(key, f"must be a list, got {value!r}")
        return tuple(_coerce(f"{key}[{i}]", item_hint, item) for i, item in enumerate(value))
    raise TypeError(f"unsupported settings field type {hint!r}")  # programming error


@dataclass(frozen=True)
class _Section:
    """Base for one config section: coerces field types, then runs `_validate`."""

    SECTION: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _coerce(self._key(f.name), hints[f.name], getattr(self, f.name))
            object.__setattr__(self, f.name, value)
        self._validate()

    def _key(self, name: str) -> str:
        return f"{self.SECTION}.{name}"

    def _validate(self) -> None:
        """Check ranges and allowed values (overridden per section)."""

    def _between(self, name: str, low: float, high: float) -> None:
        value = getattr(self, name)
        if not low <= value <= high:
            _fail(self._key(name), f"must be between {low:g} and {high:g}, got {value!r}")

    def _one_of(self, name: str, choices: tuple[str, ...]) -> None:
        value = getattr(self, name)
        if value not in choices:
            _fail(self._key(name), f"must be one of {', '.join(choices)}, got {value!r}")


@dataclass(frozen=True)
class ShopSettings(_Section):
    """The shop's names, reply languages, demo data folder and opening hours (in schedule.timezone)."""

    SECTION: ClassVar[str] = "shop"
    name: str = "甜滋滋奶茶店"
    name_en: str = "Sweet Drops Bubble Tea"
    languages: tuple[str, ...] = ("zh", "en")
    demo_data: Path = Path("data/demo")
    hours: tuple[str, ...] = ()  # Monday .. Sunday: "HH:MM-HH:MM" or "closed"; none = always open
    ring_negative_out_of_hours: bool = False  # a negative review out of hours rings at once, not at opening

    def _validate(self) -> None:
        self._validate_hours()
        if not self.name.strip():
            _fail(self._key("name"), "must not be empty")
        if not self.languages:
            _fail(self._key("languages"), "must list at least one language")
        for language in self.languages:
            if language not in KNOWN_LANGUAGES:
                _fail(self._key("languages"), f"unknown language {language!r}; known: {', '.join(KNOWN_LANGUAGES)}")
        if len(set(self.languages)) != len(self.languages):
            _fail(self._key("languages"), f"lists a language twice: {list(self.languages)!r}")

    def _validate_hours(self) -> None:
        if self.hours and len(self.hours) != len(WEEKDAYS):
            _fail(self._key("hours"), f"must list 7 days, Monday first (or nothing: always open), got {len(self.hours)}")
        for day, spec in zip(WEEKDAYS, self.hours, strict=False):
            match = _OPENING.fullmatch(spec)
            if spec != CLOSED and (match is None or (match[3] == "24" and match[4] != "00")):
                _fail(self._key("hours"), f'{day}: must be "HH:MM-HH:MM" or "closed", got {spec!r}')
            if match is not None and spec.split("-")[0] >= spec.split("-")[1]:
                _fail(self._key("hours"), f"{day}: must close after it opens (same day), got {spec!r}")
        if self.hours and all(spec == CLOSED for spec in self.hours):
            _fail(self._key("hours"), "closes every day; leave it out for a shop that is always open")

    @property
    def opening_hours(self) -> tuple[tuple[clock_time, clock_time | None] | None, ...]:
        """Per weekday (Monday first) (opens, closes; None: at midnight), None on a closed day; () = always open."""
        def parse(spec: str) -> tuple[clock_time, clock_time | None] | None:
            if spec == CLOSED:
                return None
            opens, closes = (clock_time(int(part[:2]), int(part[3:])) for part in
                             (spec[:5], spec[6:].replace("24:00", "00:00")))
            return opens, (None if spec.endswith("24:00") else closes)
        return tuple(parse(spec) for spec in self.hours)


@dataclass(frozen=True)
class RolesSettings(_Section):
    """Who may use owner commands and staff buttons, and where decisions are mirrored."""

    SECTION: ClassVar[str] = "roles"
    owner_ids: tuple[int, ...] = ()
    staff_ids: tuple[int, ...] = ()
    staff_chat_id: int = 0
    faq_editors: str = "owners"  # who may edit the FAQ with /faq: "owners", or "staff" (staff and owners)

    def _validate(self) -> None:
        for name in ("owner_ids", "staff_ids"):
            for user_id in getattr(self, name):
                if user_id <= 0:
                    _fail(self._key(name), f"Telegram user ids are positive, got {user_id!r}")
        self._one_of("faq_editors", FAQ_EDITORS)


@dataclass(frozen=True)
class ModelSettings(_Section):
    """Base encoder, device and LoRA shape."""

    SECTION: ClassVar[str] = "model"
    base: str = "bundled"
    max_length: int = 128
    device: str = "auto"
    load_in_4bit: bool = False
    train_threads: int = 1
    top_layers: int = 2
    trunk_dtype: str = "auto"
    runtime: str = "auto"

    def _validate(self) -> None:
        if not self.base.strip():
            _fail(self._key("base"), 'must be "bundled", a local folder or a cached hub id, got an empty string')
        self._between("max_length", 8, 4096)
        self._one_of("device", DEVICES)
        if self.load_in_4bit and self.device == "cpu":
            _fail(self._key("load_in_4bit"), 'needs CUDA; not allowed with model.device = "cpu"')
        if self.train_threads < 1:
            _fail(self._key("train_threads"), f"must be at least 1, got {self.train_threads!r}")
        if self.top_layers < 1:
            _fail(self._key("top_layers"), f"must be at least 1, got {self.top_layers!r}")
        self._one_of("trunk_dtype", TRUNK_DTYPES)
        self._one_of("runtime", RUNTIMES)
        if self.runtime == "onnx" and (self.device == "cuda" or self.load_in_4bit):
            _fail(self._key("runtime"), 'onnx serves on the CPU; use "torch" (or "auto") with CUDA')
        if self.load_in_4bit and self.trunk_dtype != "auto":
            _fail(self._key("load_in_4bit"), 'the 4-bit trunk has NF4 weights computing in bfloat16; '
                  f'leave model.trunk_dtype = "auto", got {self.trunk_dtype!r}')


@dataclass(frozen=True)
class ThresholdSettings(_Section):
    """Quality gates for promotion and answering."""

    SECTION: ClassVar[str] = "thresholds"
    sentiment_accuracy: float = 0.90
    faq_accuracy: float = 0.85
    answer_confidence: float = 0.55
    suggest_confidence: float = 0.25  # "did you mean…?": entries below answer_confidence but at or above this
    suggestions: int = 3  # at most this many entries offered (0: never offer)
    suggestion_wait_minutes: float = 10.0  # unanswered "did you mean…?" buttons: then the question goes to staff
    max_regression: float = 0.02
    min_new_examples: int = 5
    max_interval: float = 0.05
    cv_folds: int = 5

    def _validate(self) -> None:
        for name in ("sentiment_accuracy", "faq_accuracy", "answer_confidence", "suggest_confidence",
                     "max_regression", "max_interval"):
            self._between(name, 0, 1)
        self._between("suggestions", 0, 3)
        self._between("suggestion_wait_minutes", 0.01, 24 * 60)
        if self.min_new_examples < 0:
            _fail(self._key("min_new_examples"), f"must be 0 or more, got {self.min_new_examples!r}")
        if self.cv_folds < 2:
            _fail(self._key("cv_folds"), f"must be at least 2, got {self.cv_folds!r}")


@dataclass(frozen=True)
class ScheduleSettings(_Section):
    """When the weekly retrain runs, how long any retrain may take, and how many old adapters it keeps."""

    SECTION: ClassVar[str] = "schedule"
    weekday: str = "sunday"
    time: str = "03:00"
    timezone: str = "Asia/Shanghai"
    retrain_timeout_minutes: float = 180.0
    keep_adapters: int = 3

    def _validate(self) -> None:
        self._one_of("weekday", WEEKDAYS)
        if not _HH_MM.fullmatch(self.time):
            _fail(self._key("time"), f"must be HH:MM on a 24-hour clock, got {self.time!r}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            _fail(self._key("timezone"), f"unknown time zone {self.timezone!r} (use an IANA name like Asia/Shanghai)")
        if not 0 < self.retrain_timeout_minutes <= 7 * 24 * 60:
            _fail(self._key("retrain_timeout_minutes"),
                  f"must be more than 0 and at most 10080 (a week), got {self.retrain_timeout_minutes!r}")
        if self.keep_adapters < 1:  # the newest may be a candidate that a `shopbot train` is gating
            _fail(self._key("keep_adapters"), f"must be at least 1, got {self.keep_adapters!r}")

    @property
    def time_of_day(self) -> clock_time:
        """The retrain time as a timezone-aware `datetime.time`."""
        hour, minute = (int(part) for part in self.time.split(":"))
        return clock_time(hour, minute, tzinfo=ZoneInfo(self.timezone))


@dataclass(frozen=True)
class TrainingSettings(_Section):
    """Where retraining runs: a child process beside the bot, or a Ray cluster (the serving side publishes either way)."""

    SECTION: ClassVar[str] = "training"
    backend: str = "local"  # "local": a spawned child, one at a time per process; "ray": a task on a Ray cluster
    ray_address: str = "auto"  # "auto": the cluster running on this machine; "host:port" / "ray://host:port"; "": a new local instance

    def _validate(self) -> None:
        self._one_of("backend", TRAINING_BACKENDS)
        if self.ray_address not in ("", "auto") and not _RAY_ADDRESS.fullmatch(self.ray_address):
            _fail(self._key("ray_address"), f'must be "auto", "" (a new local instance), "host:port" or '
                                            f'"ray://host:port", got {self.ray_address!r}')


@dataclass(frozen=True)
class StaffSettings(_Section):
    """What reaches the staff chat by itself (the mirror policy), how many decisions /review shows, and when the
    daily digest of waiting decisions is sent."""

    SECTION: ClassVar[str] = "staff"
    mirror: str = "all"  # "all": every decision is mirrored; "policy": handoffs, complaints, a sample of the rest
    sample_rate: float = 0.1  # under "policy": the share of confident decisions mirrored anyway (0 = none)
    review_batch: int = 3  # decisions shown per /review
    digest_time: str = "18:00"  # HH:MM (schedule.timezone) of the daily digest; "" = no digest

    def _validate(self) -> None:
        self._one_of("mirror", MIRROR_POLICIES)
        self._between("sample_rate", 0.0, 1.0)
        if not 1 <= self.review_batch <= 10:
            _fail(self._key("review_batch"), f"must be 1 .. 10, got {self.review_batch!r}")
        if self.digest_time and not _HH_MM.fullmatch(self.digest_time):
            _fail(self._key("digest_time"), f"must be HH:MM on a 24-hour clock or \"\", got {self.digest_time!r}")


@dataclass(frozen=True)
class PathSettings(_Section):
    """Where data lives; absolute after `settings_from_dict` resolves them."""

    SECTION: ClassVar[str] = "paths"
    database: Path = Path("var/shopbot.db")
    adapters: Path = Path("var/adapters")
    model_cache: Path = Path("var/models")
    reports: Path = Path("var/reports")


@dataclass(frozen=True)
class PrivacySettings(_Section):
    """How long customer data is kept and what /forget keeps."""

    SECTION: ClassVar[str] = "privacy"
    retention_days: int = 180
    keep_anonymised_labels: bool = True

    def _validate(self) -> None:
        if self.retention_days < 1:
            _fail(self._key("retention_days"), f"must be at least 1, got {self.retention_days!r}")


@dataclass(frozen=True)
class TelegramSettings(_Section):
    """Which Bot API server the bot talks to, and how it receives updates."""

    SECTION: ClassVar[str] = "telegram"
    mode: str = "polling"
    webhook_url: str = ""
    webhook_port: int = 8443
    webhook_listen: str = "0.0.0.0"
    api_url: str = TELEGRAM_API_URL
    file_url: str = TELEGRAM_FILE_URL
    token_env: str = TOKEN_ENV  # the environment variable holding this shop's bot token (one per shop when hosting)

    def _validate(self) -> None:
        self._one_of("mode", TELEGRAM_MODES)
        if not ENV_NAME.fullmatch(self.token_env):
            _fail(self._key("token_env"), f"must be an environment variable name (A-Z, 0-9, _), got {self.token_env!r}")
        for name in ("api_url", "file_url"):
            parts = urlsplit(getattr(self, name))
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
                problem = f"must be an http:// or https:// URL without ?query, got {getattr(self, name)!r}"
                _fail(self._key(name), problem)
        # Telegram takes only https webhooks; a self-hosted server (--local) also delivers to http ones.
        schemes = ("https",) if self.api_url == TELEGRAM_API_URL else ("https", "http")
        hook = urlsplit(self.webhook_url)
        if self.mode == "webhook" and (hook.scheme not in schemes or not hook.hostname):
            problem = (f'must be an https:// URL when telegram.mode = "webhook" (http:// only with a self-hosted '
                       f"telegram.api_url), got {self.webhook_url!r}")
            _fail(self._key("webhook_url"), problem)
        self._between("webhook_port", 1, 65535)
        try:
            ipaddress.ip_address(self.webhook_listen)
        except ValueError:
            _fail(self._key("webhook_listen"), f"must be an IP address (0.0.0.0: all interfaces), got "
                                               f"{self.webhook_listen!r}")


@dataclass(frozen=True)
class ConversationSettings(_Section):
    """How the bot behaves in a conversation staff have joined."""

    SECTION: ClassVar[str] = "conversation"
    takeover_minutes: float = 15.0  # after a staff answer the bot stays quiet for that customer this long; 0 = never

    def _validate(self) -> None:
        self._between("takeover_minutes", 0, 24 * 60)


@dataclass(frozen=True)
class BotSettings(_Section):
    """How the running bot decides messages under load (bot/batching.py)."""

    SECTION: ClassVar[str] = "bot"
    model_workers: int = 2  # threads running the model, one batch each (each uses one torch thread)
    max_batch: int = 32  # at most this many queued messages decided in one model pass (1 = no batching)
    batch_wait_ms: float = 0.0  # while a batch runs, a free worker waits this long for more messages; a lone one never waits

    def _validate(self) -> None:
        self._between("model_workers", 1, 16)
        self._between("max_batch", 1, 256)
        self._between("batch_wait_ms", 0, 100)


_SECTIONS: dict[str, type[_Section]] = {
    "shop": ShopSettings,
    "roles": RolesSettings,
    "model": ModelSettings,
    "thresholds": ThresholdSettings,
    "schedule": ScheduleSettings,
    "training": TrainingSettings,
    "staff": StaffSettings,
    "paths": PathSettings,
    "privacy": PrivacySettings,
    "telegram": TelegramSettings,
    "conversation": ConversationSettings,
    "bot": BotSettings,
}


@dataclass(frozen=True)
class Settings:
    """All configuration sections plus the bot token and webhook secret (from the environment only)."""

    shop: ShopSettings = field(default_factory=ShopSettings)
    roles: RolesSettings = field(default_factory=RolesSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    thresholds: ThresholdSettings = field(default_factory=ThresholdSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    staff: StaffSettings = field(default_factory=StaffSettings)
    paths: PathSettings = field(default_factory=PathSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    telegram: TelegramSettings = field(default_factory=TelegramSettings)
    conversation: ConversationSettings = field(default_factory=ConversationSettings)
    bot: BotSettings = field(default_factory=BotSettings)
    token: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name, cls in _SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"{name}: must be a {cls.__name__}, got {getattr(self, name)!r}")
        if self.webhook_secret is not None and not WEBHOOK_SECRET_PATTERN.fullmatch(self.webhook_secret):
            raise ConfigError(f"{WEBHOOK_SECRET_ENV}: must be 1-256 characters A-Z, a-z, 0-9, _ or - "
                              f"(got {len(self.webhook_secret)} characters, not all of them allowed)")

    def with_bot_api(self, api_url: str, file_url: str, token: str) -> Settings:
        """These settings talking to another Bot API server (self-hosted, or the emulator) with `token`."""
        telegram = dataclasses.replace(self.telegram, api_url=api_url, file_url=file_url)
        return dataclasses.replace(self, telegram=telegram, token=token)

    def is_owner(self, user_id: int) -> bool:
        """Whether this Telegram user is an owner."""
        return user_id in self.roles.owner_ids

    def is_staff(self, user_id: int) -> bool:
        """Whether this Telegram user is staff (owners are staff too)."""
        return user_id in self.roles.staff_ids or self.is_owner(user_id)

    def may_edit_faq(self, user_id: int) -> bool:
        """Whether this Telegram user may use /faq: owners, and staff too when roles.faq_editors = "staff"."""
        return self.is_owner(user_id) or (self.roles.faq_editors == "staff" and self.is_staff(user_id))

    @property
    def default_language(self) -> str:
        """The first configured language, used when a customer's is unknown."""
        return self.shop.languages[0]


def _suggest(word: str, options: list[str], template: str = "{}") -> str:
    """A did-you-mean hint for an unknown name, else the list of known names."""
    close = difflib.get_close_matches(word, options, n=1)
    if close:
        return f"; did you mean {template.format(close[0])}?"
    return f"; known: {', '.join(template.format(option) for option in options)}"


def _reject_token(key: str) -> typing.NoReturn:
    """Refuse a token in the file, pointing to the environment variable."""
    _fail(key, f"the bot token must not be stored in the config file; set the {TOKEN_ENV} environment variable instead")


def _build_section(name: str, cls: type[_Section], values: Any, base_dir: Path) -> _Section:
    """Check one section's keys, build it, and make its paths absolute."""
    if not isinstance(values, Mapping):
        _fail(name, f"must be a table ([{name}]), got {values!r}")
    known = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key == "token":
            _reject_token(f"{name}.token")
        if name == "telegram" and key in ("webhook_secret", "secret_token"):
            _fail(f"{name}.{key}", f"the webhook secret must not be stored in the config file; set the "
                                   f"{WEBHOOK_SECRET_ENV} environment variable (unset: a new one at every start)")
        if key not in known:
            _fail(f"{name}.{key}", "unknown key" + _suggest(key, known, name + ".{}"))
    section = cls(**values)
    if name in ("paths", "shop"):
        resolved = {
            f.name: (base_dir / getattr(section, f.name).expanduser()).resolve()
            for f in dataclasses.fields(section)
            if isinstance(getattr(section, f.name), Path)
        }
        section = dataclasses.replace(section, **resolved)
    return section


def settings_from_dict(data: Mapping[str, Any], base_dir: Path | str, env: Mapping[str, str] = os.environ) -> Settings:
    """Build validated Settings from parsed TOML data; relative paths resolve against `base_dir`."""
    if "token" in data:
        _reject_token("token")
    for name in data:
        if name not in _SECTIONS:
            raise ConfigError(f"{name}: unknown section" + _suggest(name, list(_SECTIONS), "[{}]"))
    base_dir = Path(base_dir).resolve()
    sections = {name: _build_section(name, cls, data.get(name, {}), base_dir) for name, cls in _SECTIONS.items()}
    token = env.get(typing.cast(TelegramSettings, sections["telegram"]).token_env) or None
    return Settings(**sections, token=token, webhook_secret=env.get(WEBHOOK_SECRET_ENV) or None)  # type: ignore[arg-type]


def load_settings(path: str | Path | None = None, env: Mapping[str, str] = os.environ) -> Settings:
    """Load config from `path`, else $SHOPBOT_CONFIG, else ./config.toml."""
    chosen = Path(path if path is not None else env.get(CONFIG_ENV) or "config.toml")
    if not chosen.is_file():
        raise ConfigError(f"config file not found: {chosen} (pass a path or set {CONFIG_ENV})")
    return settings_from_dict(_read_toml(chosen), chosen.resolve().parent, env)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read: {error}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error


# ---------------------------------------------------------------------- hosting many shops (shopbot serve)
HOSTING_FILE = "hosting.toml"
SHOP_CONFIG = "config.toml"
SHOP_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")  # a shop's name: its folder and its webhook path


@dataclass(frozen=True)
class HostingSettings(_Section):
    """[hosting] of DIR/hosting.toml: how `shopbot serve --shops DIR` receives updates and watches the shops."""

    SECTION: ClassVar[str] = "hosting"
    mode: str = "polling"  # polling | webhook: one HTTP endpoint for all shops, shop NAME at <webhook_url>/NAME
    webhook_url: str = ""  # the public base URL (https; http only for self-hosted Bot API servers / the emulator)
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    watch_seconds: float = 5.0  # how often the shops (added, removed, changed config.toml) are looked at
    retry_seconds: float = 60.0  # a shop that failed is started again after this, doubling up to an hour
    model_cache: Path = Path("var/models")  # shared base build + trunk feature cache (unless a shop sets its own)
    env_file: str = ""  # NAME=value lines (the shops' tokens), read at every look: a shop added later finds its token

    def _validate(self) -> None:
        self._one_of("mode", TELEGRAM_MODES)
        hook = urlsplit(self.webhook_url)
        if self.mode == "webhook" and (hook.scheme not in ("https", "http") or not hook.hostname or hook.query):
            _fail(self._key("webhook_url"), f'must be an https:// URL when hosting.mode = "webhook", got '
                                            f"{self.webhook_url!r}")
        self._between("webhook_port", 1, 65535)
        try:
            ipaddress.ip_address(self.webhook_listen)
        except ValueError:
            _fail(self._key("webhook_listen"), f"must be an IP address, got {self.webhook_listen!r}")
        self._between("watch_seconds", 0.05, 3600)
        self._between("retry_seconds", 0.05, 3600)

    def webhook_of(self, shop: str) -> str:
        """The public webhook URL of one shop."""
        return f"{self.webhook_url.rstrip('/')}/{shop}"


@dataclass(frozen=True)
class Hosting:
    """The hosting file read: its settings and the shops, {name: config.toml path}."""

    settings: HostingSettings
    shops: dict[str, Path]


def load_hosting(folder: str | Path) -> Hosting:
    """Read DIR/hosting.toml (optional) and list the shops: its [[shops]] (name, config), else every subfolder
    of DIR holding a config.toml (named after the folder). Read again by the watcher at every look."""
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise ConfigError(f"--shops: not a folder: {folder}")
    path = folder / HOSTING_FILE
    data = _read_toml(path) if path.is_file() else {}
    for name in data:
        if name not in ("hosting", "shops"):
            raise ConfigError(f"{name}: unknown section of {HOSTING_FILE}" + _suggest(name, ["hosting", "shops"], "[{}]"))
    settings = typing.cast(HostingSettings, _build_section("hosting", HostingSettings, data.get("hosting", {}), folder))
    settings = dataclasses.replace(settings, model_cache=(folder / settings.model_cache.expanduser()).resolve())
    listed = data.get("shops")
    if listed is None:
        shops = {child.name: child / SHOP_CONFIG for child in sorted(folder.iterdir())
                 if (child / SHOP_CONFIG).is_file() and SHOP_NAME.fullmatch(child.name)}
        return Hosting(settings, shops)
    if not isinstance(listed, list):
        raise ConfigError("shops: must be a list of tables ([[shops]] name = ..., config = ...)")
    shops = {}
    for i, entry in enumerate(listed):
        if not isinstance(entry, Mapping) or set(entry) - {"name", "config"} or not isinstance(entry.get("name"), str):
            raise ConfigError(f"shops[{i}]: must be a table with name and config (and nothing else), got {entry!r}")
        name = entry["name"]
        if not SHOP_NAME.fullmatch(name):
            raise ConfigError(f"shops[{i}].name: lower-case letters, digits, - and _ (at most 63), got {name!r}")
        if name in shops:
            raise ConfigError(f"shops[{i}].name: {name!r} is listed twice")
        shops[name] = (folder / _coerce(f"shops[{i}].config", Path, entry.get("config", f"{name}/{SHOP_CONFIG}"))).resolve()
    return Hosting(settings, shops)


def read_env_file(path: Path) -> dict[str, str]:
    """NAME=value lines (blank lines and # comments skipped; quotes around a value dropped), as `docker --env-file`."""
    values = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.removeprefix("export ").partition("=")
        if not equals or not ENV_NAME.fullmatch(name.strip()):
            raise ConfigError(f"{path}:{number}: must be NAME=value")  # never echo the line: it may hold a token
        value = value.strip()
        values[name.strip()] = value[1:-1] if len(value) > 1 and value[0] == value[-1] and value[0] in "'\"" else value
    return values


def load_shop_settings(path: Path, model_cache: Path, env: Mapping[str, str] = os.environ) -> Settings:
    """One hosted shop's settings: its config.toml as `load_settings` reads it (paths relative to it), with the
    hosting's shared `model_cache` unless the shop sets paths.model_cache itself."""
    data = _read_toml(path)
    paths = data.get("paths", {})
    if isinstance(paths, Mapping) and "model_cache" not in paths:
        data["paths"] = {**paths, "model_cache": str(model_cache)}
    return settings_from_dict(data, path.resolve().parent, env)
