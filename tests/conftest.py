"""Fixtures shared by every test: real SQLite files and configs built from dicts.

Fixtures for the local servers (feeds, Bot API, translator) live in their own
modules under tests/ and are imported by the tests that use them.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from bot import config as config_mod
from bot.store import Store

BASE_CONFIG = {
    "storage": {"path": "newsbot.db"},
    "telegram": {"base_url": "http://127.0.0.1:9/bot", "admins": []},
    "translation": {"provider": "none", "target": "en"},
    "poll": {"interval_seconds": 300, "connect_timeout": 2.0, "read_timeout": 2.0, "total_timeout": 5.0},
    "digest": {"time": "08:00", "timezone": "Asia/Almaty"},
    "feeds": [],
    "topics": [],
}


def make_config(tmp_path: Path, env: dict | None = None, **sections):
    """A validated Config whose database lives in tmp_path; sections override BASE_CONFIG."""
    raw = copy.deepcopy(BASE_CONFIG)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key].update(value)
        else:
            raw[key] = value
    return config_mod.from_dict(raw, path=tmp_path / "config.toml", env=env or {})


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "newsbot.db"


@pytest.fixture
def store(db_path: Path):
    s = Store(db_path)
    yield s
    s.close()
