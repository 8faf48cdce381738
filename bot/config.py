"""Load ``config.toml`` once and validate it into typed, frozen objects.

Every problem is reported as a :class:`~bot.errors.ConfigError` naming the key
(``feeds[3].lang: must be one of en, ru, kk``). Nothing here reads the config at
import time: callers call :func:`load` once and pass the result on.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigError
from .models import LANGS
from .rules import Topic, parse_topic

DEFAULT_PATH = "config.toml"
TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
USER_AGENT = "Mozilla/5.0 (compatible; newsbot/0.1; multilingual news monitor)"
PROVIDERS = ("google", "libre", "mymemory", "deepl", "microsoft", "yandex", "none")
MODES = ("instant", "digest", "both")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@dataclass(frozen=True)
class StorageConfig:
    path: Path = Path("data/newsbot.db")


@dataclass(frozen=True)
class TelegramConfig:
    base_url: str = "https://api.telegram.org/bot"
    admins: tuple[int, ...] = ()
    allowed_chats: tuple[int, ...] = ()  # empty: anyone may subscribe
    allow_private_feed_urls: bool = False  # /addfeed may name loopback/private hosts
    token: str | None = field(default=None, repr=False)  # from TELEGRAM_BOT_TOKEN only


@dataclass(frozen=True)
class TranslationConfig:
    provider: str = "google"
    url: str = ""  # the LibreTranslate server; also overrides the Google endpoint
    target: str = "en"  # default reader language
    api_key_env: str = ""  # environment variable holding the provider's key
    timeout_seconds: float = 10.0  # one request to the provider
    budget_seconds: float = 5.0  # most one translate()/translate_many() call may take
    concurrency: int = 4  # requests in flight to the provider
    attempts: int = 3  # tries per text within one call (transient errors only)
    breaker_failures: int = 5  # consecutive failures that open the circuit
    breaker_reset_seconds: float = 60.0  # first pause before a trial request
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PollConfig:
    interval_seconds: int = 300
    min_interval_seconds: int = 60
    max_interval_seconds: int = 3600
    concurrency: int = 64  # requests in flight overall
    per_host: int = 4  # requests in flight to one host
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0
    max_body_bytes: int = 10 * 1024 * 1024  # as sent on the wire
    max_decompressed_bytes: int = 16 * 1024 * 1024  # after gzip/deflate (the parse of a 16 MB body peaks near 400 MB)
    max_redirects: int = 5
    max_items_per_feed: int = 500  # entries kept from one body, the newest
    backoff_max_seconds: int = 6 * 3600
    user_agent: str = USER_AGENT
    alert_max_age_hours: int = 48  # older items are stored and matched, not alerted
    workers: int = 1  # processes that parse and analyse feed bodies (0: all in the main process)


@dataclass(frozen=True)
class DigestConfig:
    time: str = "08:00"
    timezone: str = "Asia/Almaty"
    grace_hours: float = 6.0  # a missed digest is still sent this long after its time


@dataclass(frozen=True)
class StoriesConfig:
    window_hours: float = 72.0


@dataclass(frozen=True)
class RetentionConfig:
    days: int = 30


@dataclass(frozen=True)
class DeliveryConfig:
    global_per_second: float = 30.0
    chat_per_second: float = 1.0
    group_per_minute: float = 20.0
    max_attempts: int = 8  # network errors/timeouts; 429s do not count
    max_in_flight: int = 32  # concurrent sendMessage calls (never two to one chat)
    backoff_base_seconds: float = 2.0  # network retry n waits base * 2**(n-1), jittered
    backoff_max_seconds: float = 300.0
    stale_sending_seconds: float = 300.0  # a 'sending' row of a live process older than this is resumed


@dataclass(frozen=True)
class FeedConfig:
    url: str
    lang: str
    name: str
    interval_seconds: int | None = None


@dataclass(frozen=True)
class Config:
    path: Path
    storage: StorageConfig
    telegram: TelegramConfig
    translation: TranslationConfig
    poll: PollConfig
    digest: DigestConfig
    stories: StoriesConfig
    retention: RetentionConfig
    delivery: DeliveryConfig
    feeds: tuple[FeedConfig, ...]
    topics: tuple[Topic, ...]
    default_topics: bool = False  # the file has no topics key: the shipped topics apply

    def topic(self, topic_id: str) -> Topic | None:
        return next((t for t in self.topics if t.id == topic_id), None)


# -- small validators -------------------------------------------------------


def _type_name(kind: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a table"}
    return names.get(kind, kind.__name__)


def _get(table: dict, key: str, where: str, kind: type, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{where}{key}", f"must be {_type_name(kind)}, not {value!r}")
    return value


def _attempt(errors: list[ConfigError], build: Callable[..., Any], *args: Any, default: Any = None) -> Any:
    """``build(*args)``; when it raises ConfigError, its problems go to ``errors`` and ``default`` is returned."""
    try:
        return build(*args)
    except ConfigError as exc:
        errors.extend(exc.errors)
        return default


def _raise_all(problems: list[ConfigError]) -> None:
    """Raise the problems found (every one of them, the first as the error), if any."""
    if problems:
        first, *rest = [e for p in problems for e in p.errors]
        raise ConfigError(first.key, first.problem, tuple(rest))


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    _raise_all([ConfigError(f"{where}{key}", "unknown key (allowed: " + ", ".join(sorted(allowed)) + ")")
                for key in table if key not in allowed])


def _positive(value: float, key: str) -> float:
    if value <= 0:
        raise ConfigError(key, f"must be greater than 0, not {value}")
    return value


def _hhmm(value: str, key: str) -> str:
    if not _HHMM.match(value):
        raise ConfigError(key, f"must be a time as HH:MM (24-hour), not {value!r}")
    return value


def _tz(value: str, key: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(key, f"unknown time zone {value!r} (use an IANA name such as Asia/Almaty)") from None
    return value


def _http_url(value: str, key: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(key, f"must be an http or https URL, not {value!r}")
    return value


def _lang(value: str, key: str) -> str:
    if value not in LANGS:
        raise ConfigError(key, "must be one of " + ", ".join(LANGS))
    return value


def _int_list(value: list, key: str) -> tuple[int, ...]:
    for i, x in enumerate(value):
        if isinstance(x, bool) or not isinstance(x, int):
            raise ConfigError(f"{key}[{i}]", f"must be a chat id (an integer), not {x!r}")
    return tuple(value)


def _section(raw: dict, name: str) -> dict:
    table = raw.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(name, "must be a table ([" + name + "])")
    return table


def _simple(raw: dict, name: str, cls: type, checks: dict[str, Callable[[Any, str], Any]] | None = None):
    """Build a flat dataclass section: known keys, right types, optional checks."""
    table = _section(raw, name)
    fields = {f.name: f for f in cls.__dataclass_fields__.values()}
    allowed = set(fields) - {"token", "api_key"}
    problems: list[ConfigError] = []
    try:
        _check_keys(table, allowed, f"{name}.")
    except ConfigError as exc:
        problems.append(exc)
    values = {}
    for key in table:
        if key not in allowed:
            continue
        default = fields[key].default
        kind = type(default)
        if kind is tuple:
            kind = list
        try:
            value = _get(table, key, f"{name}.", kind, default)
            if kind in (int, float) and key not in ("alert_max_age_hours", "workers"):
                _positive(value, f"{name}.{key}")
            if checks and key in checks:
                value = checks[key](value, f"{name}.{key}")
        except ConfigError as exc:  # the section's other keys are still checked
            problems.append(exc)
            continue
        values[key] = value
    _raise_all(problems)
    return cls(**values)


def _workers(value: int, key: str) -> int:
    if not 0 <= value <= 64:
        raise ConfigError(key, f"must be between 0 and 64 (0 parses in the main process), not {value}")
    return value


# -- the loader -------------------------------------------------------------


def resolve_path(cli_path: str | None = None) -> Path:
    """The config file: ``--config``, else ``$BOT_CONFIG``, else ./config.toml."""
    return Path(cli_path or os.environ.get("BOT_CONFIG") or DEFAULT_PATH)


def load(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Read and validate the config file; raise ConfigError on any problem."""
    env = os.environ if env is None else env
    path = Path(path) if path is not None else resolve_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("", f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("", f"cannot read config file {path}: {exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{path} is not valid TOML: {exc}") from None
    return from_dict(raw, path=path, env=env)


def from_dict(raw: dict, path: Path = Path(DEFAULT_PATH), env: dict[str, str] | None = None) -> Config:
    """Validate a parsed config into a :class:`Config`; a ConfigError names every problem found."""
    env = {} if env is None else env
    errors: list[ConfigError] = []

    def collect(build: Callable[..., Any], *args: Any) -> Any:
        return _attempt(errors, build, *args)  # a section reports every bad key in it

    collect(_check_keys, raw, {"storage", "telegram", "translation", "poll", "digest", "stories",
                               "retention", "delivery", "feeds", "topics"}, "")
    storage = collect(_storage, raw, path)
    telegram = collect(_simple, raw, "telegram", TelegramConfig, {
        "base_url": _http_url,
        "admins": _int_list,
        "allowed_chats": _int_list,
    })
    if telegram is not None:
        telegram = TelegramConfig(**{**telegram.__dict__, "token": env.get(TOKEN_ENV) or None})
    translation = collect(_translation, raw, env)
    poll = collect(_poll, raw)
    digest = collect(_simple, raw, "digest", DigestConfig, {"time": _hhmm, "timezone": _tz})
    stories = collect(_simple, raw, "stories", StoriesConfig)
    retention = collect(_simple, raw, "retention", RetentionConfig)
    delivery = collect(_simple, raw, "delivery", DeliveryConfig)
    feeds = _feeds(raw.get("feeds", []), errors)
    default_topics = "topics" not in raw  # (``topics = []`` is a choice: no topics)
    topics = _topics(raw["topics"] if not default_topics else [{"id": i} for i in _shipped_topics()], errors)
    if errors:
        first, *rest = errors
        raise ConfigError(first.key, first.problem, tuple(rest))
    return Config(path=path, storage=storage, telegram=telegram, translation=translation,
                  poll=poll, digest=digest, stories=stories, retention=retention,
                  delivery=delivery, feeds=feeds, topics=topics, default_topics=default_topics)


def _storage(raw: dict, path: Path) -> StorageConfig:
    storage_raw = _section(raw, "storage")
    _check_keys(storage_raw, {"path"}, "storage.")
    db_path = Path(_get(storage_raw, "path", "storage.", str, "data/newsbot.db"))
    if not db_path.is_absolute() and str(db_path) != ":memory:":
        db_path = path.parent / db_path
    return StorageConfig(path=db_path)


def _provider(value: str, key: str) -> str:
    if value not in PROVIDERS:
        raise ConfigError(key, "must be one of " + ", ".join(PROVIDERS))
    return value


def _translation(raw: dict, env: dict[str, str]) -> TranslationConfig:
    translation = _simple(raw, "translation", TranslationConfig, {
        "provider": _provider,
        "target": _lang,
        "url": lambda v, k: _http_url(v, k) if v else v,
    })
    if translation.provider == "libre" and not translation.url:
        raise ConfigError("translation.url", "must name the LibreTranslate server when provider is libre")
    api_key = None
    if translation.provider in ("deepl", "microsoft", "yandex"):
        if not translation.api_key_env:
            raise ConfigError("translation.api_key_env",
                              f"must name the environment variable holding the {translation.provider} key")
        api_key = env.get(translation.api_key_env) or None
    elif translation.api_key_env:
        api_key = env.get(translation.api_key_env) or None
    return TranslationConfig(**{**translation.__dict__, "api_key": api_key})


def _poll(raw: dict) -> PollConfig:
    poll = _simple(raw, "poll", PollConfig, {"workers": _workers})
    if poll.min_interval_seconds > poll.max_interval_seconds:
        raise ConfigError("poll.min_interval_seconds", "must not be greater than poll.max_interval_seconds")
    return poll


def _tables(raw: Any, name: str, build: Callable[[dict, str], Any],
            same: Callable[[Any, str, str], ConfigError], ident: Callable[[Any], Any],
            errors: list[ConfigError]) -> tuple:
    """An array of tables (``[[feeds]]``, ``[[topics]]``), each entry built by ``build(entry,
    where)``. An entry with the ``ident`` of an earlier one is the error ``same(value, where
    the earlier one is, where)``. Each bad entry adds its problems to ``errors`` and is
    left out."""
    if not isinstance(raw, list):
        errors.append(ConfigError(name, f"must be an array of tables ([[{name}]])"))
        return ()
    out = []
    seen: dict[Any, str] = {}
    for i, entry in enumerate(raw):
        where = f"{name}[{i}]"
        try:
            if not isinstance(entry, dict):
                raise ConfigError(where, "must be a table")
            value = build(entry, where)
            key = ident(value)
            if key in seen:
                raise same(value, seen[key], where)
        except ConfigError as exc:
            errors.extend(exc.errors)
            continue
        seen[key] = where
        out.append(value)
    return tuple(out)


def _topics(topics_raw: Any, errors: list[ConfigError]) -> tuple[Topic, ...]:
    return _tables(
        topics_raw, "topics", lambda t, where: parse_topic(_with_shipped_rules(t), where),
        lambda topic, first, where: ConfigError(f"{where}.id", f"duplicate topic id {topic.id!r} (also {first})"),
        lambda topic: topic.id, errors)


SHIPPED_CONFIG = Path(__file__).resolve().parent.parent / "config.toml"
_RULE_KEYS = {"id", "name", "names", "description"}


def _with_shipped_rules(topic: dict) -> dict:
    """A shipped topic named by id alone (``id`` and ``name``, no rules) gets the shipped rules.

    So a short config can say ``[[topics]] id = "kz-unrest"`` and get the full
    kz-unrest rules of the repository's config.toml; writing any rule keys
    replaces them entirely.
    """
    if not set(topic) <= _RULE_KEYS or not isinstance(topic.get("id"), str):
        return topic
    shipped = _shipped_topics().get(topic["id"])
    if shipped is None:
        return topic
    if "name" in topic and "names" not in topic:  # a name of one's own: the shipped translations of
        shipped = {k: v for k, v in shipped.items() if k != "names"}  # the shipped name no longer fit
    return {**shipped, **topic}


def _shipped_topics() -> dict[str, dict]:
    global _SHIPPED
    if _SHIPPED is None:
        try:
            raw = tomllib.loads(SHIPPED_CONFIG.read_text(encoding="utf-8"))
            _SHIPPED = {t["id"]: t for t in raw.get("topics", []) if isinstance(t, dict) and "id" in t
                        and not set(t) <= _RULE_KEYS}
        except (OSError, tomllib.TOMLDecodeError):
            _SHIPPED = {}
    return _SHIPPED


_SHIPPED: dict[str, dict] | None = None


def _feeds(feeds_raw: Any, errors: list[ConfigError]) -> tuple[FeedConfig, ...]:
    return _tables(
        feeds_raw, "feeds", _feed,
        lambda feed, first, where: ConfigError(f"{where}.url", f"duplicate feed URL (also {first})"),
        lambda feed: feed.url, errors)


def _feed(f: dict, where: str) -> FeedConfig:
    """One [[feeds]] entry; every problem in it is reported, not only the first."""
    where += "."
    problems: list[ConfigError] = []

    def check(build: Callable[[], Any], default: Any = None) -> Any:
        return _attempt(problems, build, default=default)

    check(lambda: _check_keys(f, {"url", "lang", "name", "interval_seconds"}, where))
    for required in ("url", "lang"):
        if required not in f:
            problems.append(ConfigError(f"{where}{required}", "is required"))
    url = check(lambda: _http_url(_get(f, "url", where, str, ""), f"{where}url")) if "url" in f else None
    lang = check(lambda: _lang(_get(f, "lang", where, str, ""), f"{where}lang")) if "lang" in f else None
    name = check(lambda: _get(f, "name", where, str, ""), "")
    interval = check(lambda: _get(f, "interval_seconds", where, int, None))
    if interval is not None:
        check(lambda: _positive(interval, f"{where}interval_seconds"))
    _raise_all(problems)
    return FeedConfig(url=url, lang=lang, name=name or urlsplit(url).hostname or url, interval_seconds=interval)
