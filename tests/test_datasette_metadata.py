"""The Datasette metadata file describes every table and column the migrations create."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bot.config import StorageConfig
from bot.store import Store

ROOT = Path(__file__).resolve().parent.parent
METADATA = ROOT / "datasette" / "metadata.json"
SHADOW = re.compile(r"_(data|idx|docsize|config|content|segments|segdir|stat|rowid|node|parent)$")


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict[str, list[str]]:
    """Tables and their columns in a freshly migrated database."""
    store = Store(tmp_path_factory.mktemp("schema") / "newsbot.db")
    try:
        rows = store.conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        virtual = [name for name, sql in rows if (sql or "").upper().startswith("CREATE VIRTUAL")]
        tables = [name for name, _ in rows
                  if not any(name.startswith(v + "_") and SHADOW.search(name) for v in virtual)]
        return {t: [r[1] for r in store.conn.execute(f'PRAGMA table_xinfo("{t}")')] for t in tables}
    finally:
        store.close()


@pytest.fixture(scope="module")
def described() -> dict:
    data = json.loads(METADATA.read_text(encoding="utf-8"))
    return data["databases"]["newsbot"]["tables"]


def test_database_key_matches_the_default_file_name():
    data = json.loads(METADATA.read_text(encoding="utf-8"))
    assert list(data["databases"]) == [StorageConfig().path.stem]
    assert data["title"] and data["description"]


def test_every_table_and_column_is_described(schema, described):
    missing = {t: [c for c in cols if not (described.get(t, {}).get("columns", {}).get(c) or "").strip()]
               for t, cols in schema.items()}
    missing = {t: cols for t, cols in missing.items() if cols}
    assert not missing, f"add these to datasette/metadata.json: {missing}"
    for table in schema:
        assert described[table].get("description", "").strip(), table


def test_nothing_described_that_does_not_exist(schema, described):
    stale = {t: sorted(set(d.get("columns", {})) - set(schema.get(t, []))) for t, d in described.items()}
    stale = {t: cols for t, cols in stale.items() if cols or t not in schema}
    assert not stale, f"described in datasette/metadata.json but not in the schema: {stale}"
