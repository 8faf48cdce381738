"""The SQLite store: schema, versioned migrations and every query.

sqlite-utils is imported here and nowhere else. A :class:`Store` wraps one
connection and must stay on the thread that opened it (the service keeps it on
the event-loop thread; writes are small and WAL keeps readers unblocked).

Deduplication is a database rule: ``items`` has unique indexes on
``(feed_id, key_hash)``, ``url_hash`` and ``content_hash``, and new items are
inserted with ``INSERT OR IGNORE``, so an item is stored once however often it
is seen and whichever of its identities repeats.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import struct
import sys
from datetime import datetime
from pathlib import Path
from typing import Iterable, Iterator


def _import_sqlite_utils():
    """Import sqlite-utils without numpy and pandas.

    sqlite-utils imports both when they are installed, only to map their scalar types to
    column types; this project never stores such values. numpy is installed (matplotlib,
    for the trend chart, needs it), and importing it costs about 14 MB of RSS (measured with
    psutil) in a process that runs for months. They are hidden for the duration of this one
    import and visible again afterwards, so the trend chart still imports them.
    """
    hidden = [name for name in ("numpy", "pandas") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  (import raises ImportError)
    try:
        import sqlite_utils
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    return sqlite_utils


sqlite_utils = _import_sqlite_utils()
from sqlite_utils import Migrations  # noqa: E402

from .errors import NewsBotError
from .models import Feed, Item, Match, Subscriber, WatchWord, from_iso, identifies, iso, utcnow

migrations = Migrations("newsbot")


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def url_hash(url: str | None) -> str | None:
    """The identity an item's canonical URL gives it (items.url_hash), or None when it gives none
    (no URL, or a site's front page: see :func:`bot.models.identifies`)."""
    return sha1(url) if identifies(url) else None


# -- schema -----------------------------------------------------------------
# Never edit an applied migration: add a new one below it.


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE feeds (
            id INTEGER PRIMARY KEY,
            url TEXT NOT NULL UNIQUE,          -- where it is fetched now
            config_url TEXT,                   -- as first configured (survives redirects)
            name TEXT NOT NULL,
            lang TEXT NOT NULL,
            source TEXT NOT NULL DEFAULT 'config',   -- config | admin | opml | cli
            interval_seconds INTEGER,          -- NULL: the [poll] default
            etag TEXT,
            last_modified TEXT,
            last_status INTEGER,
            last_error TEXT,
            failures INTEGER NOT NULL DEFAULT 0,     -- consecutive
            unchanged_polls INTEGER NOT NULL DEFAULT 0,
            next_poll_at TEXT,
            last_polled_at TEXT,
            last_ok_at TEXT,
            last_new_at TEXT,
            retired_at TEXT,
            retired_reason TEXT,
            added_at TEXT NOT NULL
        );
        CREATE INDEX feeds_next_poll ON feeds(next_poll_at);

        CREATE TABLE items (
            id INTEGER PRIMARY KEY,
            feed_id INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
            key_hash TEXT NOT NULL,            -- sha1 of the per-feed key (GUID, link or content)
            guid TEXT,
            url TEXT,                          -- canonical
            url_hash TEXT,
            content_hash TEXT NOT NULL,
            title TEXT NOT NULL,
            summary TEXT NOT NULL,
            lang TEXT NOT NULL,
            published TEXT,
            fetched TEXT NOT NULL,
            story_id INTEGER
        );
        CREATE UNIQUE INDEX items_feed_key ON items(feed_id, key_hash);
        CREATE UNIQUE INDEX items_url ON items(url_hash);
        CREATE UNIQUE INDEX items_content ON items(content_hash);
        CREATE INDEX items_fetched ON items(fetched);
        CREATE INDEX items_story ON items(story_id);

        CREATE TABLE matches (
            item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            topic TEXT NOT NULL,               -- topic id, or watch:<watchword id>
            score REAL NOT NULL,
            terms TEXT NOT NULL,               -- JSON list, as the words appeared
            PRIMARY KEY (item_id, topic)
        ) WITHOUT ROWID;
        CREATE INDEX matches_topic ON matches(topic, item_id);

        CREATE TABLE stories (
            id INTEGER PRIMARY KEY,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            item_count INTEGER NOT NULL DEFAULT 1,
            headline TEXT,
            headline_lang TEXT,
            langs TEXT NOT NULL DEFAULT '',   -- e.g. "en,kk"
            sources TEXT NOT NULL DEFAULT '[]' -- JSON list of feed names
        );
        CREATE INDEX stories_last_seen ON stories(last_seen);

        CREATE TABLE translations (
            provider TEXT NOT NULL,
            src TEXT NOT NULL,
            dst TEXT NOT NULL,
            text_hash TEXT NOT NULL,
            translated TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (provider, src, dst, text_hash)
        ) WITHOUT ROWID;

        CREATE TABLE subscribers (
            chat_id INTEGER PRIMARY KEY,
            chat_type TEXT NOT NULL DEFAULT 'private',
            title TEXT,
            lang TEXT NOT NULL DEFAULT 'en',
            mode TEXT NOT NULL DEFAULT 'both',
            digest_time TEXT NOT NULL DEFAULT '08:00',
            timezone TEXT NOT NULL DEFAULT 'Asia/Almaty',
            quiet_start TEXT,
            quiet_end TEXT,
            skip_empty_digest INTEGER NOT NULL DEFAULT 0,
            paused TEXT,
            created_at TEXT NOT NULL,
            last_digest_at TEXT,
            next_digest_at TEXT
        );

        CREATE TABLE subscriptions (
            chat_id INTEGER NOT NULL REFERENCES subscribers(chat_id) ON DELETE CASCADE,
            topic TEXT NOT NULL,
            PRIMARY KEY (chat_id, topic)
        ) WITHOUT ROWID;

        CREATE TABLE watchwords (
            id INTEGER PRIMARY KEY,
            chat_id INTEGER NOT NULL REFERENCES subscribers(chat_id) ON DELETE CASCADE,
            word TEXT NOT NULL,
            lang TEXT,
            expansions TEXT NOT NULL DEFAULT '{}',   -- JSON {lang: [terms]}
            created_at TEXT NOT NULL,
            UNIQUE (chat_id, word)
        );

        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            chat_id INTEGER NOT NULL,
            kind TEXT NOT NULL,                -- alert | digest | reply | notice
            dedup_key TEXT UNIQUE,             -- e.g. alert:<chat>:<story>:<n>
            text TEXT NOT NULL,
            parse_mode TEXT DEFAULT 'HTML',
            disable_preview INTEGER NOT NULL DEFAULT 0,
            reply_markup TEXT,
            status TEXT NOT NULL DEFAULT 'pending',  -- pending | sending | sent | failed | held
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT,
            created_at TEXT NOT NULL,
            sent_at TEXT,
            message_id INTEGER,
            error TEXT
        );
        CREATE INDEX outbox_status ON outbox(status, next_attempt_at);

        CREATE TABLE alerts (
            chat_id INTEGER NOT NULL,
            story_id INTEGER NOT NULL,
            item_count INTEGER NOT NULL,       -- story size when last alerted
            sent_at TEXT NOT NULL,
            PRIMARY KEY (chat_id, story_id)
        ) WITHOUT ROWID;

        CREATE TABLE cycles (
            id INTEGER PRIMARY KEY,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            feeds INTEGER NOT NULL DEFAULT 0,
            fetched INTEGER NOT NULL DEFAULT 0,
            not_modified INTEGER NOT NULL DEFAULT 0,
            errors INTEGER NOT NULL DEFAULT 0,
            new_items INTEGER NOT NULL DEFAULT 0,
            matched INTEGER NOT NULL DEFAULT 0
        );

        CREATE TABLE kv (
            key TEXT PRIMARY KEY,
            value TEXT
        );
        """
    )


@migrations()
def m002_translate_pending(db: sqlite_utils.Database) -> None:
    """Texts a reader should see translated that could not be translated yet."""
    db.executescript(
        """
        CREATE TABLE translation_pending (
            provider TEXT NOT NULL,
            src TEXT NOT NULL,
            dst TEXT NOT NULL,
            text_hash TEXT NOT NULL,
            text TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            next_attempt_at TEXT,              -- NULL: given up (kept for the operator)
            created_at TEXT NOT NULL,
            PRIMARY KEY (provider, src, dst, text_hash)
        ) WITHOUT ROWID;
        CREATE INDEX translation_pending_due ON translation_pending(provider, next_attempt_at);
        """
    )


@migrations()
def m003_service_alerts(db: sqlite_utils.Database) -> None:
    """What a reader was last alerted of, so a growing story updates them once."""
    db.executescript(
        """
        ALTER TABLE alerts ADD COLUMN sources INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE alerts ADD COLUMN langs TEXT NOT NULL DEFAULT '';
        ALTER TABLE alerts ADD COLUMN updates INTEGER NOT NULL DEFAULT 0;
        """
    )


@migrations()
def m004_fetch_body_hash(db: sqlite_utils.Database) -> None:
    """sha1 of a feed's last good body: an unchanged body is not parsed again."""
    db.executescript("ALTER TABLE feeds ADD COLUMN body_hash TEXT;")


@migrations()
def m005_delivery_claims(db: sqlite_utils.Database) -> None:
    """Who is sending an outbox row (crash recovery) and a due-row index per chat."""
    db.executescript(
        """
        ALTER TABLE outbox ADD COLUMN claimed_by TEXT;   -- host:pid:run of the sender, while 'sending'
        ALTER TABLE outbox ADD COLUMN claimed_at TEXT;
        CREATE INDEX outbox_chat ON outbox(chat_id, status);
        """
    )


@migrations()
def m006_stories_index(db: sqlite_utils.Database) -> None:
    """Story clustering: fingerprints of indexed items, the key index (anchors and
    MinHash LSH bands, time-bounded) and per-language headlines."""
    db.executescript(
        """
        CREATE TABLE story_items (
            item_id INTEGER PRIMARY KEY,       -- items.id (kept apart: items are purged by retention)
            story_id INTEGER NOT NULL,
            t INTEGER NOT NULL,                -- item time (published, else fetched), Unix seconds
            lang TEXT NOT NULL,
            fp TEXT NOT NULL                   -- packed fingerprint (bot.stories._pack)
        );
        CREATE INDEX story_items_t ON story_items(t);

        CREATE TABLE story_keys (
            key INTEGER NOT NULL,              -- 64-bit hash of an anchor or LSH band key
            t INTEGER NOT NULL,
            item_id INTEGER NOT NULL,
            PRIMARY KEY (key, t, item_id)
        ) WITHOUT ROWID;
        CREATE INDEX story_keys_t ON story_keys(t);

        ALTER TABLE stories ADD COLUMN headlines TEXT NOT NULL DEFAULT '{}';  -- JSON {lang: headline}
        ALTER TABLE stories ADD COLUMN first_item INTEGER;
        """
    )


@migrations()
def m007_stories_key_pruning(db: sqlite_utils.Database) -> None:
    """story_keys loses its time index (it doubled the cost of every insert); old rows are
    pruned through story_items, item by item, instead."""
    db.executescript("DROP INDEX IF EXISTS story_keys_t;")


@migrations()
def m008_stories_keys_by_day(db: sqlite_utils.Database) -> None:
    """story_keys ordered by day first: a poll's new rows land in today's part of the
    table (fewer pages written per commit) and old days go as a range."""
    db.executescript(
        """
        CREATE TABLE story_keys_new (
            day INTEGER NOT NULL,              -- t // 86400
            key INTEGER NOT NULL,
            t INTEGER NOT NULL,
            item_id INTEGER NOT NULL,
            PRIMARY KEY (day, key, t, item_id)
        ) WITHOUT ROWID;
        INSERT INTO story_keys_new(day, key, t, item_id) SELECT t / 86400, key, t, item_id FROM story_keys;
        DROP TABLE story_keys;
        ALTER TABLE story_keys_new RENAME TO story_keys;
        """
    )


@migrations()
def m009_stories_item_keys(db: sqlite_utils.Database) -> None:
    """story_items keeps the index keys each item was filed under, so that the in-memory key
    filter (bot.stories.KeyFilter) is rebuilt from them on start (rows from before have none:
    their days are read without the filter)."""
    db.executescript("ALTER TABLE story_items ADD COLUMN keys BLOB;  -- little-endian signed 64-bit ints")


@migrations()
def m010_feeds_listed(db: sqlite_utils.Database) -> None:
    """feeds.listed: the key hashes of the items the feed's last parsed body listed. Retention
    keeps those items, however old: a slow feed still listing an item past the retention age
    would otherwise have it stored again, and alerted again, the next time its body changes."""
    db.executescript("ALTER TABLE feeds ADD COLUMN listed TEXT;  -- space-separated items.key_hash values")


# -- the store --------------------------------------------------------------


# when an item happened, in SQL (as bot.stories.item_time, without its hour of slack): its
# publication time, or when it was fetched for an item without a date or with one after that
_EVENT_TIME = "CASE WHEN i.published <= i.fetched THEN i.published ELSE i.fetched END"


class Store:
    """One SQLite database, opened with WAL and migrated to the newest schema."""

    def __init__(self, path: str | Path):
        self.path = Path(path) if str(path) != ":memory:" else None
        self.db = None
        try:
            self._open()
        except (sqlite3.Error, OSError) as exc:  # a path that is a directory, not a database, not writable
            if self.db is not None:
                self.db.close()
            raise NewsBotError(f"storage: cannot open the database {self.path or ':memory:'}: {exc}") from exc

    def _open(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite_utils.Database(self.path)
        else:
            self.db = sqlite_utils.Database(memory=True)
        conn = self.db.conn
        conn.execute("PRAGMA busy_timeout = 5000")
        if not self.db.table_names():
            # a new file: let retention hand freed pages back to the OS (PRAGMA incremental_vacuum)
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        if self.path is not None:
            self.db.enable_wal()
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        migrations.apply(self.db)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    # -- key/value ---------------------------------------------------------

    def get_kv(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_kv(self, key: str, value: str | None) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)", (key, value))

    # -- feeds ---------------------------------------------------------------

    def sync_feeds(self, feeds: Iterable, now: datetime | None = None) -> None:
        """Make the configured feeds exist (config.FeedConfig objects).

        A feed already known (by its configured URL) keeps its polling state; its
        name, language and interval follow the config. Feeds that came from the
        config and are no longer in it are retired; one that comes back is
        reactivated unless it was retired because the server said 410 Gone.
        """
        now = now or utcnow()
        wanted = {f.url: f for f in feeds}
        with self.conn:
            existing = {
                row[0]: row
                for row in self.conn.execute(
                    "SELECT config_url, id, retired_reason FROM feeds WHERE source = 'config'"
                )
            }
            for url, f in wanted.items():
                if url in existing:
                    _, feed_id, reason = existing[url]
                    self.conn.execute(
                        "UPDATE feeds SET name = ?, lang = ?, interval_seconds = ? WHERE id = ?",
                        (f.name, f.lang, f.interval_seconds, feed_id),
                    )
                    if reason == "removed from config":
                        self.conn.execute(
                            "UPDATE feeds SET retired_at = NULL, retired_reason = NULL WHERE id = ?",
                            (feed_id,),
                        )
                    continue
                self.conn.execute(
                    "INSERT OR IGNORE INTO feeds(url, config_url, name, lang, source, interval_seconds, added_at) "
                    "VALUES (?, ?, ?, ?, 'config', ?, ?)",
                    (url, url, f.name, f.lang, f.interval_seconds, iso(now)),
                )
            for url, (_, feed_id, reason) in existing.items():
                if url not in wanted and reason is None:
                    self.conn.execute(
                        "UPDATE feeds SET retired_at = ?, retired_reason = 'removed from config' WHERE id = ?",
                        (iso(now), feed_id),
                    )

    def add_feed(self, url: str, lang: str, name: str, source: str = "cli",
                 interval_seconds: int | None = None, now: datetime | None = None) -> Feed:
        """Add a feed (or reactivate a retired one with that URL); return it."""
        now = now or utcnow()
        with self.conn:
            row = self.conn.execute("SELECT id FROM feeds WHERE url = ? OR config_url = ?", (url, url)).fetchone()
            if row:
                self.conn.execute(
                    "UPDATE feeds SET name = ?, lang = ?, retired_at = NULL, retired_reason = NULL, "
                    "failures = 0, next_poll_at = NULL WHERE id = ?",
                    (name, lang, row[0]),
                )
                feed_id = row[0]
            else:
                cur = self.conn.execute(
                    "INSERT INTO feeds(url, config_url, name, lang, source, interval_seconds, added_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (url, url, name, lang, source, interval_seconds, iso(now)),
                )
                feed_id = cur.lastrowid
        return self.feed(feed_id)

    def remove_feed(self, feed_id_or_url: int | str, now: datetime | None = None) -> Feed | None:
        """Retire a feed (its items stay); return it, or None when unknown."""
        feed = self.find_feed(feed_id_or_url)
        if feed is None:
            return None
        with self.conn:
            self.conn.execute(
                "UPDATE feeds SET retired_at = ?, retired_reason = 'removed' WHERE id = ?",
                (iso(now or utcnow()), feed.id),
            )
        return self.feed(feed.id)

    def find_feed(self, feed_id_or_url: int | str) -> Feed | None:
        if isinstance(feed_id_or_url, int) or str(feed_id_or_url).isdigit():
            return self.feed(int(feed_id_or_url))
        row = self.conn.execute(
            "SELECT id FROM feeds WHERE url = ? OR config_url = ?", (feed_id_or_url, feed_id_or_url)
        ).fetchone()
        return self.feed(row[0]) if row else None

    def feed(self, feed_id: int) -> Feed | None:
        rows = list(self._feeds("WHERE id = ?", (feed_id,)))
        return rows[0] if rows else None

    def feeds(self, include_retired: bool = False) -> list[Feed]:
        where = "" if include_retired else "WHERE retired_at IS NULL"
        return list(self._feeds(where + " ORDER BY id", ()))

    def due_feeds(self, now: datetime) -> list[Feed]:
        """Active feeds whose next poll time has come (or was never set)."""
        return list(self._feeds(
            "WHERE retired_at IS NULL AND (next_poll_at IS NULL OR next_poll_at <= ?) ORDER BY next_poll_at",
            (iso(now),),
        ))

    def _feeds(self, where: str, params: tuple) -> Iterator[Feed]:
        cur = self.conn.execute(
            "SELECT id, url, name, lang, interval_seconds, etag, last_modified, last_status, last_error, "
            "failures, next_poll_at, last_polled_at, retired_at, unchanged_polls, body_hash FROM feeds " + where,
            params,
        )
        for r in cur:
            yield Feed(
                id=r[0], url=r[1], name=r[2], lang=r[3], interval_seconds=r[4], etag=r[5],
                last_modified=r[6], last_status=r[7], last_error=r[8], failures=r[9],
                next_poll_at=from_iso(r[10]), last_polled_at=from_iso(r[11]),
                retired_at=from_iso(r[12]), unchanged_polls=r[13], body_hash=r[14],
            )

    def save_feed_state(self, feed: Feed, *, ok_at: datetime | None = None,
                        new_at: datetime | None = None, retired_reason: str | None = None,
                        listed: list[str] | None = None) -> None:
        """Persist the polling state the fetch stage computed for a feed; ``listed``: the key
        hashes of the entries of the body just parsed (None: no body was parsed, keep the last)."""
        with self.conn:
            self.conn.execute(
                "UPDATE feeds SET url = ?, etag = ?, last_modified = ?, last_status = ?, last_error = ?, "
                "failures = ?, unchanged_polls = ?, next_poll_at = ?, last_polled_at = ?, "
                "last_ok_at = COALESCE(?, last_ok_at), last_new_at = COALESCE(?, last_new_at), "
                "retired_at = ?, retired_reason = COALESCE(?, retired_reason), body_hash = ?, "
                "listed = COALESCE(?, listed) WHERE id = ?",
                (feed.url, feed.etag, feed.last_modified, feed.last_status, feed.last_error,
                 feed.failures, feed.unchanged_polls, iso(feed.next_poll_at), iso(feed.last_polled_at),
                 iso(ok_at), iso(new_at), iso(feed.retired_at), retired_reason, feed.body_hash,
                 " ".join(listed) if listed is not None else None, feed.id),
            )

    def url_taken(self, url: str, feed_id: int) -> bool:
        row = self.conn.execute("SELECT 1 FROM feeds WHERE url = ? AND id != ?", (url, feed_id)).fetchone()
        return row is not None

    # -- items ---------------------------------------------------------------

    def known_items(self, feed_id: int, key_hashes: list[str], url_hashes: list[str],
                    content_hashes: list[str]) -> tuple[set[str], set[str], set[str]]:
        """Which of these identities are already stored (one query each)."""

        def present(sql: str, values: list[str], extra: tuple = ()) -> set[str]:
            found: set[str] = set()
            values = [v for v in values if v]
            for start in range(0, len(values), 500):
                chunk = values[start:start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(r[0] for r in self.conn.execute(sql.format(marks=marks), (*extra, *chunk)))
            return found

        keys = present("SELECT key_hash FROM items WHERE feed_id = ? AND key_hash IN ({marks})",
                       key_hashes, (feed_id,))
        urls = present("SELECT url_hash FROM items WHERE url_hash IN ({marks})", url_hashes)
        contents = present("SELECT content_hash FROM items WHERE content_hash IN ({marks})", content_hashes)
        return keys, urls, contents

    def insert_item(self, item: Item) -> int | None:
        """Store an item unless any of its identities is already stored.

        Returns the new row id, or None when it was a duplicate. Call inside a
        transaction (``with store.conn:``) when inserting many.
        """
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO items(feed_id, key_hash, guid, url, url_hash, content_hash, title, summary, "
            "lang, published, fetched, story_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (item.feed_id, sha1(item.key), item.guid, item.url, url_hash(item.url),
             item.content_hash, item.title, item.summary, item.lang, iso(item.published),
             iso(item.fetched), item.story_id),
        )
        if cur.rowcount == 0:
            return None
        item.id = cur.lastrowid
        return item.id

    def insert_items(self, items: list[Item]) -> list[Item]:
        """:meth:`insert_item` for many items of one feed, a few statements in all.

        Returns the items stored (their ``id`` set), in the order given; the
        duplicates are left out. Call inside a transaction.
        """
        stored: dict[str, int] = {}
        cols = 12
        for start in range(0, len(items), 400):
            chunk = items[start:start + 400]
            params: list = []
            for item in chunk:
                params += (item.feed_id, sha1(item.key), item.guid, item.url, url_hash(item.url),
                           item.content_hash, item.title, item.summary, item.lang, iso(item.published),
                           iso(item.fetched), item.story_id)
            marks = ",".join(["(" + ",".join("?" * cols) + ")"] * len(chunk))
            for row_id, feed_id, key_hash in self.conn.execute(
                    "INSERT OR IGNORE INTO items(feed_id, key_hash, guid, url, url_hash, content_hash, title, summary, "
                    f"lang, published, fetched, story_id) VALUES {marks} RETURNING id, feed_id, key_hash", params):
                stored[f"{feed_id}:{key_hash}"] = row_id
        out = []
        for item in items:
            row_id = stored.pop(f"{item.feed_id}:{sha1(item.key)}", None)
            if row_id is not None:
                item.id = row_id
                out.append(item)
        return out

    def newest_item_id(self) -> int:
        return self.conn.execute("SELECT max(id) FROM items").fetchone()[0] or 0

    def matched_item_ids(self, after: int, upto: int) -> list[int]:
        """Ids of the items in (after, upto] with at least one match, in order."""
        return [r[0] for r in self.conn.execute(
            "SELECT DISTINCT item_id FROM matches WHERE item_id > ? AND item_id <= ? ORDER BY item_id",
            (after, upto))]

    def first_unfiled_matched(self, after: int, upto: int, fetched_since: datetime) -> int | None:
        """The lowest id in (after, upto] of a matched item in no story yet, fetched since then."""
        return self.conn.execute(
            "SELECT min(id) FROM items WHERE story_id IS NULL AND id > ? AND id <= ? AND fetched >= ? "
            "AND EXISTS (SELECT 1 FROM matches WHERE item_id = items.id)",
            (after, upto, iso(fetched_since))).fetchone()[0]

    _ITEM_COLUMNS = ("feed_id, key_hash, url, title, summary, lang, published, fetched, content_hash, guid, id, "
                     "story_id")

    @staticmethod
    def _item(r) -> Item:
        """An Item from a row of :data:`_ITEM_COLUMNS` (the key is its hash: the key itself is not kept)."""
        return Item(feed_id=r[0], key=r[1], url=r[2], title=r[3], summary=r[4], lang=r[5],
                    published=from_iso(r[6]), fetched=from_iso(r[7]), content_hash=r[8], guid=r[9],
                    id=r[10], story_id=r[11])

    def item(self, item_id: int) -> Item | None:
        r = self.conn.execute(f"SELECT {self._ITEM_COLUMNS} FROM items WHERE id = ?", (item_id,)).fetchone()
        return self._item(r) if r is not None else None

    def unfiled_items(self, limit: int) -> list[Item]:
        """Stored items that are in no story yet (a cycle that died before filing them, or
        another process's cycle still filing), the oldest stored first, at most ``limit``."""
        return [self._item(r) for r in self.conn.execute(
            f"SELECT {self._ITEM_COLUMNS} FROM items WHERE story_id IS NULL ORDER BY id LIMIT ?", (limit,))]

    def count(self, table: str, where: str = "", params: tuple = ()) -> int:
        return self.conn.execute(f"SELECT count(*) FROM {table} {where}", params).fetchone()[0]

    # -- matches -------------------------------------------------------------

    def save_matches(self, item_id: int, matches: list[Match]) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO matches(item_id, topic, score, terms) VALUES (?, ?, ?, ?)",
            [(item_id, m.topic, m.score, json.dumps(m.terms, ensure_ascii=False)) for m in matches],
        )

    def matches_for(self, item_id: int) -> list[Match]:
        return [
            Match(topic=r[0], score=r[1], terms=json.loads(r[2]))
            for r in self.conn.execute(
                "SELECT topic, score, terms FROM matches WHERE item_id = ? ORDER BY score DESC", (item_id,)
            )
        ]

    # -- cycles --------------------------------------------------------------

    def start_cycle(self, now: datetime) -> int:
        with self.conn:
            return self.conn.execute("INSERT INTO cycles(started_at) VALUES (?)", (iso(now),)).lastrowid

    def finish_cycle(self, cycle_id: int, now: datetime, **counts: int) -> None:
        cols = ", ".join(f"{k} = ?" for k in counts)
        with self.conn:
            self.conn.execute(
                f"UPDATE cycles SET finished_at = ?{', ' if cols else ''}{cols} WHERE id = ?",
                (iso(now), *counts.values(), cycle_id),
            )

    def last_cycle(self) -> dict | None:
        cur = self.conn.execute("SELECT * FROM cycles ORDER BY id DESC LIMIT 1")
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row))

    # -- translations (cache) ------------------------------------------------
    # Keys are (provider, src, dst, text_hash); text_hash is sha1 of the text as
    # the translator normalised it. Only the translator calls these.

    def get_translation(self, provider: str, src: str, dst: str, text_hash: str) -> str | None:
        row = self.conn.execute(
            "SELECT translated FROM translations WHERE provider = ? AND src = ? AND dst = ? AND text_hash = ?",
            (provider, src, dst, text_hash),
        ).fetchone()
        return row[0] if row else None

    def get_translations(self, provider: str, dst: str,
                         keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Cached translations for many ``(src, text_hash)`` keys at once."""
        found: dict[tuple[str, str], str] = {}
        by_src: dict[str, list[str]] = {}
        for src, text_hash in keys:
            by_src.setdefault(src, []).append(text_hash)
        for src, hashes in by_src.items():
            hashes = list(dict.fromkeys(hashes))
            for start in range(0, len(hashes), 500):
                chunk = hashes[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for text_hash, translated in self.conn.execute(
                    f"SELECT text_hash, translated FROM translations WHERE provider = ? AND src = ? "
                    f"AND dst = ? AND text_hash IN ({marks})", (provider, src, dst, *chunk)
                ):
                    found[(src, text_hash)] = translated
        return found

    def put_translation(self, provider: str, src: str, dst: str, text_hash: str, translated: str,
                        now: datetime | None = None) -> None:
        """Cache a translation and drop the text from the pending queue."""
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO translations(provider, src, dst, text_hash, translated, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)", (provider, src, dst, text_hash, translated, iso(now or utcnow())),
            )
            self.conn.execute(
                "DELETE FROM translation_pending WHERE provider = ? AND src = ? AND dst = ? AND text_hash = ?",
                (provider, src, dst, text_hash),
            )

    def add_translations_pending(self, provider: str, rows: Iterable[tuple[str, str, str, str, str]],
                                 next_attempt_at: datetime, now: datetime | None = None) -> None:
        """Remember texts still to translate: rows of ``(src, dst, text_hash, text, error)``.

        A text already waiting keeps its schedule and attempt count; one that
        was given up is revived (wanted again, so tried again from the start).
        """
        created = iso(now or utcnow())
        with self.conn:
            self.conn.executemany(
                "INSERT INTO translation_pending(provider, src, dst, text_hash, text, last_error, "
                "next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(provider, src, dst, text_hash) DO UPDATE SET last_error = excluded.last_error, "
                "attempts = CASE WHEN next_attempt_at IS NULL THEN 0 ELSE attempts END, "
                "next_attempt_at = COALESCE(next_attempt_at, excluded.next_attempt_at)",
                [(provider, src, dst, h, text, error, iso(next_attempt_at), created)
                 for src, dst, h, text, error in rows],
            )

    def due_translations(self, provider: str, now: datetime, limit: int) -> list[dict]:
        """Pending texts whose next attempt is due, oldest first."""
        cur = self.conn.execute(
            "SELECT src, dst, text_hash, text, attempts FROM translation_pending "
            "WHERE provider = ? AND next_attempt_at IS NOT NULL AND next_attempt_at <= ? "
            "ORDER BY created_at, text_hash LIMIT ?", (provider, iso(now), limit),
        )
        return [dict(zip(("src", "dst", "text_hash", "text", "attempts"), r)) for r in cur]

    def translation_failed(self, provider: str, src: str, dst: str, text_hash: str, error: str,
                           next_attempt_at: datetime | None) -> None:
        """Count a failed attempt; ``next_attempt_at=None`` gives the text up."""
        with self.conn:
            self.conn.execute(
                "UPDATE translation_pending SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
                "WHERE provider = ? AND src = ? AND dst = ? AND text_hash = ?",
                (error, iso(next_attempt_at), provider, src, dst, text_hash),
            )

    def pending_translations(self, provider: str | None = None) -> int:
        """How many texts still wait for a translation (given-up ones excluded)."""
        where = "WHERE next_attempt_at IS NOT NULL" + (" AND provider = ?" if provider else "")
        return self.conn.execute(f"SELECT count(*) FROM translation_pending {where}",
                                 (provider,) if provider else ()).fetchone()[0]

    # -- stories -------------------------------------------------------------
    # (bot.stories is the only caller; none of these commit: the caller's transaction does)

    _json = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(..., ensure_ascii=False), built once

    def story_candidates(self, query: dict[int, float], t_min: int, t_max: int, per_key: int, limit: int, *,
                         pairs: Iterable[tuple[int, int]] | None = None) -> list[tuple[int, float]]:
        """The ``limit`` items sharing the most weight of ``query`` ({index key: weight}):
        (item_id, summed weight), heaviest first (ties: the highest item id first).

        Read: the rows under the query's keys with a time in [t_min, t_max], the newest
        ``per_key`` of each key and day (``pairs``: only these (day, key) pairs, the caller
        knowing that the others hold nothing). The summing and ranking run in SQLite: a
        lookup in a busy window reads hundreds of rows and returns a dozen."""
        if pairs is None:
            days = range(t_min // 86400, t_max // 86400 + 1)
            pairs = [(d, k) for k in query for d in days]
        pairs = list(pairs)
        arm = ("SELECT item_id, ? AS w FROM (SELECT item_id FROM story_keys WHERE day = ? AND key = ? "
               "AND t BETWEEN ? AND ? ORDER BY t DESC, item_id DESC LIMIT ?)")
        step = 400  # arms per statement (SQLite allows 500 in one compound SELECT)
        chunks = [pairs[i:i + step] for i in range(0, len(pairs), step)]
        ranked: dict[int, float] = {}
        for chunk in chunks:
            params: list = []
            for d, k in chunk:
                params += (query[k], d, k, t_min, t_max, per_key)
            sql = f"SELECT item_id, sum(w) AS r FROM ({' UNION ALL '.join([arm] * len(chunk))}) GROUP BY item_id"
            if len(chunks) == 1:
                return self.conn.execute(sql + " ORDER BY r DESC, item_id DESC LIMIT ?", (*params, limit)).fetchall()
            for item_id, r in self.conn.execute(sql, params):  # a window of many days: summed here
                ranked[item_id] = ranked.get(item_id, 0.0) + r
        return sorted(ranked.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:limit]

    def indexed_items_after(self, item_id: int) -> list[tuple[int, int, int, str, list[int] | None]]:
        """(item_id, story_id, t, packed fingerprint, index keys or None when not recorded) of the
        items indexed with an item id above ``item_id``."""
        return [(i, story_id, t, fp, self._unpack_keys(keys) if keys is not None else None)
                for i, story_id, t, fp, keys in self.conn.execute(
                    "SELECT item_id, story_id, t, fp, keys FROM story_items WHERE item_id > ?", (item_id,))]

    def newest_indexed_id(self) -> int:
        return self.conn.execute("SELECT max(item_id) FROM story_items").fetchone()[0] or 0

    def data_version(self) -> int:
        """Changes when another connection commits to the database (PRAGMA data_version)."""
        return self.conn.execute("PRAGMA data_version").fetchone()[0]

    def indexed_items(self, item_ids: list[int]) -> list[tuple[int, int, int, str]]:
        """(item_id, story_id, t, packed fingerprint) of indexed items."""
        if not item_ids:
            return []
        marks = ",".join("?" * len(item_ids))
        return self.conn.execute(
            f"SELECT item_id, story_id, t, fp FROM story_items WHERE item_id IN ({marks})", item_ids).fetchall()

    def indexed_items_since(self, t_min: int, *, with_keys: bool = False) -> Iterator[tuple]:
        """(item_id, story_id, t, packed fingerprint) of items indexed with a time from t_min, oldest
        first; ``with_keys``: and their index keys (None when not recorded)."""
        if not with_keys:
            yield from self.conn.execute(
                "SELECT item_id, story_id, t, fp FROM story_items WHERE t >= ? ORDER BY t", (t_min,))
            return
        for item_id, story_id, t, fp, keys in self.conn.execute(
                "SELECT item_id, story_id, t, fp, keys FROM story_items WHERE t >= ? ORDER BY t", (t_min,)):
            yield item_id, story_id, t, fp, self._unpack_keys(keys) if keys is not None else None

    def newest_indexed_time(self) -> int | None:
        return self.conn.execute("SELECT max(t) FROM story_items").fetchone()[0]

    def item_story(self, item_id: int) -> int | None:
        """The story an item was assigned to, or None."""
        row = self.conn.execute("SELECT story_id FROM items WHERE id = ?", (item_id,)).fetchone()
        return row[0] if row else None

    def story_size(self, story_id: int) -> int:
        row = self.conn.execute("SELECT item_count FROM stories WHERE id = ?", (story_id,)).fetchone()
        return row[0] if row else 0

    def index_story_item(self, item_id: int, story_id: int, t: int, lang: str, packed: str,
                         keys: Iterable[int]) -> None:
        """Record an item's fingerprint and index keys (the item row is claimed by
        :meth:`claim_story_item`)."""
        keys = set(keys)
        self.conn.execute("INSERT OR REPLACE INTO story_items(item_id, story_id, t, lang, fp, keys) "
                          "VALUES (?, ?, ?, ?, ?, ?)", (item_id, story_id, t, lang, packed, self._pack_keys(keys)))
        day = t // 86400
        self.conn.executemany("INSERT OR IGNORE INTO story_keys(day, key, t, item_id) VALUES (?, ?, ?, ?)",
                              [(day, k, t, item_id) for k in keys])

    def claim_story_item(self, item_id: int, story_id: int, *, force: bool = False) -> bool:
        """Write an item's story on its row, unless it has one already (``force``: even then);
        False when the row was not written."""
        if force:
            sql = "UPDATE items SET story_id = ? WHERE id = ?"
        else:
            sql = "UPDATE items SET story_id = ? WHERE id = ? AND story_id IS NULL"
        return self.conn.execute(sql, (story_id, item_id)).rowcount > 0

    def delete_story(self, story_id: int) -> None:
        """Remove a story row (one just created that lost a race for its item)."""
        self.conn.execute("DELETE FROM stories WHERE id = ?", (story_id,))

    def _feed_name(self, feed_id: int) -> str:
        row = self.conn.execute("SELECT name FROM feeds WHERE id = ?", (feed_id,)).fetchone()
        return row[0] if row else f"feed {feed_id}"

    @staticmethod
    def _headline_entry(item: Item) -> dict:
        return {"text": item.title, "lang": item.lang, "source_lang": item.lang, "translated": False,
                "item_id": item.id}

    def create_story(self, item: Item, when: datetime, translation: str | None = None,
                     feed_name: str | None = None) -> int:
        """A new story of one item; returns its id. ``feed_name`` saves looking the feed up."""
        headlines = {item.lang: self._headline_entry(item)}
        if translation and item.lang != "en" and translation.strip():
            headlines["en"] = {"text": translation.strip(), "lang": "en", "source_lang": item.lang,
                               "translated": True, "item_id": item.id}
        seen = iso(when)
        return self.conn.execute(
            "INSERT INTO stories(first_seen, last_seen, item_count, headline, headline_lang, langs, sources, "
            "headlines, first_item) VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?)",
            (seen, seen, item.title, item.lang, item.lang,
             self._json([feed_name or self._feed_name(item.feed_id)]),
             self._json(headlines), item.id),
        ).lastrowid

    def add_to_story(self, story_id: int, item: Item, when: datetime, translation: str | None = None,
                     feed_name: str | None = None) -> int | None:
        """Fold an item into a story's row (times, count, sources, languages, headlines); the new
        size, or None when there is no such story (any more)."""
        row = self.conn.execute(
            "SELECT first_seen, last_seen, item_count, langs, sources, headlines FROM stories WHERE id = ?",
            (story_id,)).fetchone()
        if row is None:
            return None
        first, last = from_iso(row[0]), from_iso(row[1])
        langs = [x for x in row[3].split(",") if x]
        if item.lang not in langs:
            langs.append(item.lang)
        sources = json.loads(row[4] or "[]")
        name = feed_name or self._feed_name(item.feed_id)
        if name not in sources:
            sources.append(name)
        headlines = json.loads(row[5] or "{}")
        current = headlines.get(item.lang)
        if current is None or current.get("translated"):
            headlines[item.lang] = self._headline_entry(item)
        if translation and translation.strip() and item.lang != "en" and "en" not in headlines:
            headlines["en"] = {"text": translation.strip(), "lang": "en", "source_lang": item.lang,
                               "translated": True, "item_id": item.id}
        size = row[2] + 1
        self.conn.execute(
            "UPDATE stories SET first_seen = ?, last_seen = ?, item_count = ?, langs = ?, sources = ?, "
            "headlines = ? WHERE id = ?",
            (iso(min(first, when)), iso(max(last, when)), size, ",".join(langs),
             self._json(sources), self._json(headlines), story_id),
        )
        return size

    def story_row(self, story_id: int) -> dict | None:
        """The stories row with its JSON decoded (sources, headlines) and langs as a list."""
        cur = self.conn.execute(
            "SELECT id, first_seen, last_seen, item_count, headline, headline_lang, langs, sources, headlines "
            "FROM stories WHERE id = ?", (story_id,))
        row = cur.fetchone()
        if row is None:
            return None
        out = dict(zip([d[0] for d in cur.description], row))
        out["langs"] = [x for x in out["langs"].split(",") if x]
        out["sources"] = json.loads(out["sources"] or "[]")
        out["headlines"] = json.loads(out["headlines"] or "{}")
        return out

    def story_growth(self, story_id: int, since: datetime) -> int:
        """Items of a story fetched after ``since``."""
        return self.conn.execute("SELECT count(*) FROM items WHERE story_id = ? AND fetched > ?",
                                 (story_id, iso(since))).fetchone()[0]

    def oldest_index_day(self) -> int | None:
        """The first day (t // 86400) with index rows, or None when the index is empty."""
        keys_day = self.conn.execute("SELECT min(day) FROM story_keys").fetchone()[0]
        items_t = self.conn.execute("SELECT min(t) FROM story_items").fetchone()[0]
        days = [d for d in (keys_day, items_t // 86400 if items_t is not None else None) if d is not None]
        return min(days) if days else None

    def indexed_count(self, t_from: int, t_to: int) -> int:
        """Indexed items with a time in [t_from, t_to)."""
        return self.conn.execute("SELECT count(*) FROM story_items WHERE t >= ? AND t < ?",
                                 (t_from, t_to)).fetchone()[0]

    def indexed_time_after(self, t_from: int, t_to: int, n: int) -> int:
        """The time of the (n+1)-th indexed item from ``t_from`` on, or ``t_to`` when there are
        not that many before it."""
        row = self.conn.execute("SELECT t FROM story_items WHERE t >= ? AND t < ? ORDER BY t LIMIT 1 OFFSET ?",
                                (t_from, t_to, n)).fetchone()
        return row[0] if row else t_to

    def unindex_slice(self, day: int, key_from: int, key_to: int | None, t_from: int, t_to: int) -> int:
        """Forget a slice of one day's index: its story_keys rows with a key in [key_from, key_to)
        (``key_to`` None: to the last key) and the items with a time in [t_from, t_to). Both
        are ranges of an index, deleted as such. Returns the items forgotten."""
        if key_to is None:
            self.conn.execute("DELETE FROM story_keys WHERE day = ? AND key >= ?", (day, key_from))
        else:
            self.conn.execute("DELETE FROM story_keys WHERE day = ? AND key >= ? AND key < ?", (day, key_from, key_to))
        return self.conn.execute("DELETE FROM story_items WHERE t >= ? AND t < ?", (t_from, t_to)).rowcount

    @staticmethod
    def _pack_keys(keys: Iterable[int]) -> bytes:
        """Index keys (signed 64-bit ints) as the bytes of story_items.keys."""
        keys = list(keys)
        return struct.pack(f"<{len(keys)}q", *keys)

    @staticmethod
    def _unpack_keys(blob: bytes) -> list[int] | None:
        """The keys of story_items.keys; None when damaged (the caller recomputes them)."""
        if not isinstance(blob, bytes) or len(blob) % 8:
            return None
        return list(struct.unpack(f"<{len(blob) // 8}q", blob))

    def purge_story_index(self, cutoff: datetime) -> int:
        """Retention: index rows and fingerprints of items older than ``cutoff``."""
        t = int(cutoff.timestamp())
        with self.conn:
            n = self.conn.execute("DELETE FROM story_keys WHERE day <= ? AND t < ?", (t // 86400, t)).rowcount
            n += self.conn.execute("DELETE FROM story_items WHERE t < ?", (t,)).rowcount
        return n

    # -- subscribers, subscriptions, watchwords --------------------------------
    # (subscribers and subscriptions: the Telegram bot's part)

    _SUBSCRIBER_COLUMNS = ("chat_id, chat_type, lang, mode, digest_time, timezone, quiet_start, quiet_end, "
                           "skip_empty_digest, paused, last_digest_at")
    SUBSCRIBER_SETTINGS = frozenset({"chat_type", "title", "lang", "mode", "digest_time", "timezone",
                                     "quiet_start", "quiet_end", "skip_empty_digest", "paused", "next_digest_at"})

    @staticmethod
    def _subscriber_row(r) -> Subscriber:
        return Subscriber(chat_id=r[0], chat_type=r[1], lang=r[2], mode=r[3], digest_time=r[4], timezone=r[5],
                          quiet_start=r[6], quiet_end=r[7], skip_empty_digest=bool(r[8]), paused=r[9],
                          last_digest_at=from_iso(r[10]))

    def subscriber(self, chat_id: int) -> Subscriber | None:
        row = self.conn.execute(f"SELECT {self._SUBSCRIBER_COLUMNS} FROM subscribers WHERE chat_id = ?",
                                (chat_id,)).fetchone()
        return self._subscriber_row(row) if row else None

    def subscribers(self, include_paused: bool = False) -> list[Subscriber]:
        where = "" if include_paused else "WHERE paused IS NULL "
        return [self._subscriber_row(r) for r in self.conn.execute(
            f"SELECT {self._SUBSCRIBER_COLUMNS} FROM subscribers {where}ORDER BY chat_id")]

    def ensure_subscriber(self, chat_id: int, *, lang: str, digest_time: str, timezone: str,
                          chat_type: str = "private", title: str | None = None, mode: str = "both",
                          now: datetime | None = None) -> tuple[Subscriber, bool]:
        """The subscriber for a chat, created with these defaults when new; (subscriber, created)."""
        with self.conn:
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO subscribers(chat_id, chat_type, title, lang, mode, digest_time, timezone, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (chat_id, chat_type, title, lang, mode, digest_time, timezone, iso(now or utcnow())),
            )
            created = cur.rowcount == 1
            if not created:
                self.conn.execute("UPDATE subscribers SET chat_type = ?, title = COALESCE(?, title) "
                                  "WHERE chat_id = ?", (chat_type, title, chat_id))
        return self.subscriber(chat_id), created

    def update_subscriber(self, chat_id: int, **settings) -> Subscriber | None:
        """Change a subscriber's settings (names from ``SUBSCRIBER_SETTINGS``); None when unknown."""
        unknown = set(settings) - self.SUBSCRIBER_SETTINGS
        if unknown:
            raise ValueError("update_subscriber: unknown setting(s) " + ", ".join(sorted(unknown)))
        if "lang" in settings and settings["lang"] not in ("en", "ru", "kk"):
            raise ValueError(f"update_subscriber: lang must be en, ru or kk, not {settings['lang']!r}")
        if "mode" in settings and settings["mode"] not in ("instant", "digest", "both"):
            raise ValueError(f"update_subscriber: mode must be instant, digest or both, not {settings['mode']!r}")
        if settings:
            values = [int(v) if isinstance(v, bool) else v for v in settings.values()]
            with self.conn:
                self.conn.execute(
                    "UPDATE subscribers SET " + ", ".join(f"{k} = ?" for k in settings) + " WHERE chat_id = ?",
                    (*values, chat_id),
                )
        return self.subscriber(chat_id)

    def subscribe(self, chat_id: int, topic: str) -> bool:
        """Follow a topic; True when it was not followed before."""
        with self.conn:
            return self.conn.execute("INSERT OR IGNORE INTO subscriptions(chat_id, topic) VALUES (?, ?)",
                                     (chat_id, topic)).rowcount == 1

    def unsubscribe(self, chat_id: int, topic: str) -> bool:
        """Stop following a topic; True when it was followed."""
        with self.conn:
            return self.conn.execute("DELETE FROM subscriptions WHERE chat_id = ? AND topic = ?",
                                     (chat_id, topic)).rowcount == 1

    def subscribed_topics(self, chat_id: int) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT topic FROM subscriptions WHERE chat_id = ? ORDER BY topic", (chat_id,))]

    def subscribers_for_topic(self, topic: str, include_paused: bool = False) -> list[Subscriber]:
        paused = "" if include_paused else "AND s.paused IS NULL "
        cols = ", ".join("s." + c.strip() for c in self._SUBSCRIBER_COLUMNS.split(","))
        return [self._subscriber_row(r) for r in self.conn.execute(
            f"SELECT {cols} FROM subscribers s JOIN subscriptions t ON t.chat_id = s.chat_id "
            f"WHERE t.topic = ? {paused}ORDER BY s.chat_id", (topic,))]

    def forget_subscriber(self, chat_id: int) -> bool:
        """/stop: delete the subscriber and everything kept for them (topics, watch words,
        alert records, queued and sent messages). True when there was a subscriber."""
        with self.conn:
            for table in ("subscriptions", "watchwords", "alerts", "outbox"):
                self.conn.execute(f"DELETE FROM {table} WHERE chat_id = ?", (chat_id,))
            return self.conn.execute("DELETE FROM subscribers WHERE chat_id = ?", (chat_id,)).rowcount == 1

    def subscriber_counts(self) -> dict[str, int]:
        row = self.conn.execute(
            "SELECT count(*), count(paused) FROM subscribers").fetchone()
        return {"subscribers": row[0], "paused": row[1]}

    def items_between(self, since: datetime, until: datetime, limit: int = 20000) -> list[dict]:
        """Items first seen in (since, until], newest first, with their feed's name (/watch previews)."""
        cur = self.conn.execute(
            "SELECT i.id, i.story_id, i.title, i.summary, i.lang, i.url, i.fetched, f.name AS feed_name "
            "FROM items i JOIN feeds f ON f.id = i.feed_id WHERE i.fetched > ? AND i.fetched <= ? "
            "ORDER BY i.fetched DESC LIMIT ?", (iso(since), iso(until), limit))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur]

    # (watchwords: the matching part; expansions are JSON {lang: [terms]})

    MAX_WATCHWORD_CHARS = 64
    MAX_EXPANSION_CHARS = 128

    @staticmethod
    def _watchword_row(r) -> WatchWord:
        try:
            expansions = json.loads(r[4] or "{}")
        except ValueError:
            expansions = {}
        if not isinstance(expansions, dict):
            expansions = {}
        return WatchWord(id=r[0], chat_id=r[1], word=r[2], lang=r[3],
                         expansions={k: [str(x) for x in v] for k, v in expansions.items() if isinstance(v, list)})

    def _clean_expansions(self, expansions: dict | None) -> dict[str, list[str]]:
        if expansions is None:
            return {}
        if not isinstance(expansions, dict):
            raise ValueError("watch word: expansions must be a mapping of language to a list of terms")
        out: dict[str, list[str]] = {}
        for lang, terms in expansions.items():
            if lang not in ("en", "ru", "kk"):
                raise ValueError(f"watch word: expansion language must be en, ru or kk, not {lang!r}")
            if isinstance(terms, str) or not isinstance(terms, (list, tuple)):
                raise ValueError(f"watch word: expansions[{lang}] must be a list of terms")
            cleaned: list[str] = []
            for term in terms:
                if not isinstance(term, str) or not " ".join(term.split()):
                    raise ValueError(f"watch word: expansions[{lang}] has an empty or non-text term")
                term = " ".join(term.split())
                if len(term) > self.MAX_EXPANSION_CHARS:
                    raise ValueError(f"watch word: expansions[{lang}] term longer than "
                                     f"{self.MAX_EXPANSION_CHARS} characters")
                if term.casefold() not in {t.casefold() for t in cleaned}:
                    cleaned.append(term)
            out[lang] = cleaned
        return out

    def add_watchword(self, chat_id: int, word: str, lang: str | None = None,
                      expansions: dict[str, list[str]] | None = None, now: datetime | None = None) -> WatchWord:
        """Store a reader's watch word with its expansions; return it.

        A word the chat already watches (compared case-insensitively) keeps its
        id and gets the new language and expansions. The chat must exist
        (``ensure_subscriber`` first): ValueError otherwise, as for an empty or
        over-long word or malformed expansions.
        """
        if not isinstance(word, str) or not " ".join(word.split()):
            raise ValueError("watch word: is empty")
        word = " ".join(word.split())
        if len(word) > self.MAX_WATCHWORD_CHARS:
            raise ValueError(f"watch word: longer than {self.MAX_WATCHWORD_CHARS} characters")
        if lang is not None and lang not in ("en", "ru", "kk"):
            raise ValueError(f"watch word: lang must be en, ru or kk, not {lang!r}")
        cleaned = self._clean_expansions(expansions)
        if self.conn.execute("SELECT 1 FROM subscribers WHERE chat_id = ?", (chat_id,)).fetchone() is None:
            raise ValueError(f"watch word: unknown chat {chat_id} (create the subscriber first)")
        with self.conn:
            same = next((w for w in self.watchwords(chat_id) if w.word.casefold() == word.casefold()), None)
            if same is not None:
                self.conn.execute("UPDATE watchwords SET lang = ?, expansions = ? WHERE id = ?",
                                  (lang, json.dumps(cleaned, ensure_ascii=False), same.id))
                watch_id = same.id
            else:
                watch_id = self.conn.execute(
                    "INSERT INTO watchwords(chat_id, word, lang, expansions, created_at) VALUES (?, ?, ?, ?, ?)",
                    (chat_id, word, lang, json.dumps(cleaned, ensure_ascii=False), iso(now or utcnow())),
                ).lastrowid
        return self.watchword(watch_id)

    def update_watchword_expansions(self, chat_id: int, word: str,
                                    expansions: dict[str, list[str]]) -> WatchWord | None:
        """Replace a watch word's expansions (the reader edited them); None when not watched."""
        cleaned = self._clean_expansions(expansions)
        same = next((w for w in self.watchwords(chat_id) if w.word.casefold() == " ".join(word.split()).casefold()),
                    None)
        if same is None:
            return None
        with self.conn:
            self.conn.execute("UPDATE watchwords SET expansions = ? WHERE id = ?",
                              (json.dumps(cleaned, ensure_ascii=False), same.id))
        return self.watchword(same.id)

    def remove_watchword(self, chat_id: int, word: str) -> bool:
        """Stop watching a word (compared case-insensitively); True when it was watched."""
        same = next((w for w in self.watchwords(chat_id) if w.word.casefold() == " ".join(word.split()).casefold()),
                    None)
        if same is None:
            return False
        with self.conn:
            return self.conn.execute("DELETE FROM watchwords WHERE id = ?", (same.id,)).rowcount == 1

    def watchword(self, watchword_id: int) -> WatchWord | None:
        row = self.conn.execute("SELECT id, chat_id, word, lang, expansions FROM watchwords WHERE id = ?",
                                (watchword_id,)).fetchone()
        return self._watchword_row(row) if row else None

    def watchwords(self, chat_id: int) -> list[WatchWord]:
        """A chat's watch words, oldest first."""
        return [self._watchword_row(r) for r in self.conn.execute(
            "SELECT id, chat_id, word, lang, expansions FROM watchwords WHERE chat_id = ? ORDER BY id", (chat_id,))]

    def all_watchwords(self, include_paused: bool = False) -> list[WatchWord]:
        """Every watch word (of chats not paused, unless asked), for the matcher."""
        paused = "" if include_paused else "WHERE s.paused IS NULL "
        return [self._watchword_row(r) for r in self.conn.execute(
            "SELECT w.id, w.chat_id, w.word, w.lang, w.expansions FROM watchwords w "
            f"JOIN subscribers s ON s.chat_id = w.chat_id {paused}ORDER BY w.id")]

    # -- outbox and alerts ---------------------------------------------------
    # (delivery's part; the sender in bot/delivery.py drives the state machine:
    #  pending -> sending -> sent | failed, and back to pending for a retry)

    OUTBOX_KINDS = frozenset({"alert", "digest", "reply", "notice"})
    _OUTBOX_COLUMNS = ("id", "chat_id", "kind", "dedup_key", "text", "parse_mode", "disable_preview",
                       "reply_markup", "status", "attempts", "next_attempt_at", "created_at", "sent_at",
                       "message_id", "error", "claimed_by", "claimed_at")

    def _outbox_values(self, chat_id: int, kind: str, text: str, dedup_key: str | None, disable_preview: bool,
                       reply_markup, not_before: datetime | None, parse_mode: str | None,
                       now: datetime | None) -> tuple:
        if isinstance(chat_id, bool) or not isinstance(chat_id, int):
            raise ValueError(f"enqueue: chat_id must be an integer, not {chat_id!r}")
        if kind not in self.OUTBOX_KINDS:
            raise ValueError(f"enqueue: kind must be one of {', '.join(sorted(self.OUTBOX_KINDS))}, not {kind!r}")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"enqueue: text must be a non-empty string (chat {chat_id}, kind {kind})")
        if parse_mode not in (None, "HTML", "MarkdownV2", "Markdown"):
            raise ValueError(f"enqueue: parse_mode must be HTML, MarkdownV2, Markdown or None, not {parse_mode!r}")
        if reply_markup is not None and not isinstance(reply_markup, str):
            try:
                reply_markup = json.dumps(reply_markup, ensure_ascii=False)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"enqueue: reply_markup must be JSON-serialisable: {exc}") from None
        elif isinstance(reply_markup, str):
            try:
                json.loads(reply_markup)
            except ValueError as exc:
                raise ValueError(f"enqueue: reply_markup is not valid JSON: {exc}") from None
        return (chat_id, kind, dedup_key, text, parse_mode, int(bool(disable_preview)), reply_markup,
                iso(not_before), iso(now or utcnow()))

    _ENQUEUE_SQL = ("INSERT OR IGNORE INTO outbox(chat_id, kind, dedup_key, text, parse_mode, disable_preview, "
                    "reply_markup, next_attempt_at, created_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')")

    def enqueue(self, chat_id: int, kind: str, text: str, dedup_key: str | None = None,
                disable_preview: bool = False, reply_markup=None, *, not_before: datetime | None = None,
                parse_mode: str | None = "HTML", now: datetime | None = None) -> int | None:
        """Write a message to the outbox before it is sent; return its row id.

        Idempotent: a ``dedup_key`` already in the outbox (in any status) queues
        nothing and returns None. ``reply_markup`` is a dict (e.g. an
        ``inline_keyboard``) or its JSON text; ``not_before`` holds the message
        until then (quiet hours). When the connection already has a transaction
        open (sqlite3 opens one at the first write inside ``with store.conn:``)
        it joins it; otherwise it commits at once. Either way a repeat after a
        crash is harmless: the ``dedup_key`` keeps the message once.
        Raises ValueError on bad input (nothing is written).
        """
        values = self._outbox_values(chat_id, kind, text, dedup_key, disable_preview, reply_markup,
                                     not_before, parse_mode, now)
        if self.conn.in_transaction:
            cur = self.conn.execute(self._ENQUEUE_SQL, values)
        else:
            with self.conn:
                cur = self.conn.execute(self._ENQUEUE_SQL, values)
        return cur.lastrowid if cur.rowcount == 1 else None

    def enqueue_many(self, messages: Iterable[dict], now: datetime | None = None) -> int:
        """Queue many messages (dicts of :meth:`enqueue`'s arguments) in one transaction.

        All are validated first, so bad input writes nothing. Returns how many
        were new (dedup keys already queued are skipped).
        """
        now = now or utcnow()
        rows = []
        for m in messages:
            m = dict(m)
            rows.append(self._outbox_values(
                m.pop("chat_id"), m.pop("kind"), m.pop("text"), m.pop("dedup_key", None),
                m.pop("disable_preview", False), m.pop("reply_markup", None), m.pop("not_before", None),
                m.pop("parse_mode", "HTML"), now))
            if m:
                raise ValueError("enqueue_many: unknown field(s) " + ", ".join(sorted(m)))
        before = self.conn.total_changes
        if self.conn.in_transaction:
            self.conn.executemany(self._ENQUEUE_SQL, rows)
        else:
            with self.conn:
                self.conn.executemany(self._ENQUEUE_SQL, rows)
        return self.conn.total_changes - before

    def outbox_row(self, row_id: int) -> dict | None:
        cur = self.conn.execute(f"SELECT {', '.join(self._OUTBOX_COLUMNS)} FROM outbox WHERE id = ?", (row_id,))
        row = cur.fetchone()
        return dict(zip(self._OUTBOX_COLUMNS, row)) if row else None

    def outbox_rows(self, chat_id: int | None = None, status: str | None = None) -> list[dict]:
        where, params = [], []
        if chat_id is not None:
            where.append("chat_id = ?")
            params.append(chat_id)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        sql = f"SELECT {', '.join(self._OUTBOX_COLUMNS)} FROM outbox"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [dict(zip(self._OUTBOX_COLUMNS, r)) for r in self.conn.execute(sql + " ORDER BY id", params)]

    def outbox_counts(self) -> dict[str, int]:
        """Rows per status, e.g. ``{"pending": 3, "sent": 120}``."""
        return dict(self.conn.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())

    def outbox_due(self, now: datetime, limit: int = 1000, per_chat: int = 1_000_000,
                   exclude: set[int] | frozenset[int] = frozenset()) -> list[dict]:
        """Pending rows whose time has come, oldest first, with the chat's pause reason (``paused``).

        At most ``per_chat`` per chat are considered (so one chat's backlog cannot crowd
        out the others) and ``limit`` in all; rows whose id is in ``exclude`` (already
        held by the caller) are counted but not returned, so their text is not read again.
        """
        ids = [r[0] for r in self.conn.execute(
            "SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY chat_id ORDER BY id) AS n FROM outbox "
            "WHERE status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?)) "
            "WHERE n <= ? ORDER BY id LIMIT ?", (iso(now), per_chat, limit))]
        wanted = [i for i in ids if i not in exclude]
        rows: list[dict] = []
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            cur = self.conn.execute(
                "SELECT o.id, o.chat_id, o.kind, o.text, o.parse_mode, o.disable_preview, o.reply_markup, "
                "o.attempts, s.paused FROM outbox o LEFT JOIN subscribers s ON s.chat_id = o.chat_id "
                f"WHERE o.id IN ({','.join('?' * len(chunk))}) AND o.status = 'pending' ORDER BY o.id", chunk)
            names = [d[0] for d in cur.description]
            rows.extend(dict(zip(names, r)) for r in cur)
        return rows

    def outbox_next_due(self) -> datetime | None:
        """When the earliest held or backed-off pending row becomes due (None: none waits)."""
        row = self.conn.execute("SELECT min(next_attempt_at) FROM outbox WHERE status = 'pending'").fetchone()
        return from_iso(row[0]) if row and row[0] else None

    def outbox_claim(self, row_id: int, owner: str, now: datetime | None = None) -> bool:
        """pending -> sending (committed before the HTTP call); False when it was not pending."""
        with self.conn:
            return self.conn.execute(
                "UPDATE outbox SET status = 'sending', attempts = attempts + 1, claimed_by = ?, claimed_at = ? "
                "WHERE id = ? AND status = 'pending'", (owner, iso(now or utcnow()), row_id)).rowcount == 1

    def outbox_claim_many(self, row_ids: Iterable[int], owner: str, now: datetime | None = None) -> set[int]:
        """:meth:`outbox_claim` for several rows in one commit; returns the ids claimed."""
        ids = list(row_ids)
        claimed: set[int] = set()
        stamp = iso(now or utcnow())
        with self.conn:  # one statement per 500 ids; "+status": look rows up by id, not by the status index
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                claimed.update(r[0] for r in self.conn.execute(
                    "UPDATE outbox SET status = 'sending', attempts = attempts + 1, claimed_by = ?, claimed_at = ? "
                    f"WHERE id IN ({','.join('?' * len(chunk))}) AND +status = 'pending' RETURNING id",
                    (owner, stamp, *chunk)))
        return claimed

    def outbox_sent_many(self, sent: Iterable[tuple[int, int | None]], now: datetime | None = None) -> None:
        """:meth:`outbox_sent` for several ``(row_id, message_id)`` in one commit."""
        stamp = iso(now or utcnow())
        with self.conn:
            self.conn.executemany(
                "UPDATE outbox SET status = 'sent', sent_at = ?, message_id = ?, error = NULL, claimed_by = NULL, "
                "claimed_at = NULL WHERE id = ?", [(stamp, message_id, row_id) for row_id, message_id in sent])

    def outbox_sent(self, row_id: int, message_id: int | None, now: datetime | None = None) -> None:
        """sending -> sent, right after Telegram accepted the message."""
        with self.conn:
            self.conn.execute(
                "UPDATE outbox SET status = 'sent', sent_at = ?, message_id = ?, error = NULL, claimed_by = NULL, "
                "claimed_at = NULL WHERE id = ?", (iso(now or utcnow()), message_id, row_id))

    def outbox_retry(self, row_id: int, next_attempt_at: datetime | None, error: str,
                     count_attempt: bool = True) -> None:
        """Back to pending for another try at ``next_attempt_at`` (a 429 does not count as an attempt)."""
        with self.conn:
            self.conn.execute(
                "UPDATE outbox SET status = 'pending', next_attempt_at = ?, error = ?, claimed_by = NULL, "
                "claimed_at = NULL, attempts = attempts - ? WHERE id = ?",
                (iso(next_attempt_at), error, 0 if count_attempt else 1, row_id))

    def outbox_fail(self, row_id: int, error: str) -> None:
        """A permanent failure: the row is kept with its error and never retried."""
        with self.conn:
            self.conn.execute(
                "UPDATE outbox SET status = 'failed', error = ?, claimed_by = NULL, claimed_at = NULL WHERE id = ?",
                (error, row_id))

    def outbox_fail_chat(self, chat_id: int, error: str) -> int:
        """Fail every pending row of a chat (it blocked the bot, or is gone); returns how many."""
        with self.conn:
            return self.conn.execute(
                "UPDATE outbox SET status = 'failed', error = ? WHERE chat_id = ? AND status = 'pending'",
                (error, chat_id)).rowcount

    def outbox_recover(self, is_alive, stale_before: datetime) -> list[int]:
        """Rows left 'sending' by a sender that is gone go back to 'pending'; returns their ids.

        ``is_alive(claimed_by)`` says whether that sender still runs; a row
        claimed before ``stale_before`` is resumed whatever it says.
        """
        rows = self.conn.execute(
            "SELECT id, claimed_by, claimed_at FROM outbox WHERE status = 'sending'").fetchall()
        ids = [r[0] for r in rows if not is_alive(r[1]) or (r[2] or "") < iso(stale_before)]
        if ids:
            with self.conn:
                self.conn.executemany(
                    "UPDATE outbox SET status = 'pending', next_attempt_at = NULL, claimed_by = NULL, "
                    "claimed_at = NULL, error = 'interrupted while sending; resent (may have arrived once already)' "
                    "WHERE id = ? AND status = 'sending'", [(i,) for i in ids])
        return ids

    def pause_subscriber(self, chat_id: int, reason: str) -> bool:
        """Stop delivering to a chat (blocked, deactivated, chat not found); True when a subscriber was paused."""
        with self.conn:
            return self.conn.execute("UPDATE subscribers SET paused = ? WHERE chat_id = ?",
                                     (reason, chat_id)).rowcount == 1

    def unpause_subscriber(self, chat_id: int) -> bool:
        """The chat is reachable again (the user wrote to the bot); True when it was paused."""
        with self.conn:
            return self.conn.execute("UPDATE subscribers SET paused = NULL WHERE chat_id = ? AND paused IS NOT NULL",
                                     (chat_id,)).rowcount == 1

    def migrate_chat(self, old_id: int, new_id: int) -> dict[str, int]:
        """A group became a supergroup: move its subscriber, topics, watch words, alert
        records and unsent outbox rows to ``new_id`` (merging into an existing
        ``new_id`` subscriber, whose own settings win). Returns rows moved per table."""
        moved: dict[str, int] = {}
        with self.conn:
            cols = [r[1] for r in self.conn.execute("PRAGMA table_info(subscribers)") if r[1] != "chat_id"]
            moved["subscribers"] = self.conn.execute(
                f"INSERT OR IGNORE INTO subscribers(chat_id, {', '.join(cols)}) "
                f"SELECT ?, {', '.join(cols)} FROM subscribers WHERE chat_id = ?", (new_id, old_id)).rowcount
            self.conn.execute("UPDATE subscribers SET chat_type = 'supergroup' WHERE chat_id = ? "
                              "AND EXISTS (SELECT 1 FROM subscribers WHERE chat_id = ?)", (new_id, old_id))
            for table in ("subscriptions", "watchwords", "alerts"):
                moved[table] = self.conn.execute(
                    f"UPDATE OR IGNORE {table} SET chat_id = ? WHERE chat_id = ?", (new_id, old_id)).rowcount
                self.conn.execute(f"DELETE FROM {table} WHERE chat_id = ?", (old_id,))
            moved["outbox"] = self.conn.execute(
                "UPDATE outbox SET chat_id = ? WHERE chat_id = ? AND status IN ('pending', 'sending', 'held')",
                (new_id, old_id)).rowcount
            self.conn.execute("DELETE FROM subscribers WHERE chat_id = ?", (old_id,))
        return moved


    # -- digests and alerts: what a reader gets (service) --------------------

    def matched_rows(self, topics: Iterable[str], since: datetime | None, until: datetime,
                     story_ids: Iterable[int] | None = None) -> list[dict]:
        """Matches of these topic ids (or ``watch:<id>``) on items first seen in (since, until],
        of these stories only when ``story_ids`` is given."""
        topics = list(topics)
        if not topics:
            return []
        marks = ",".join("?" * len(topics))
        story_filter, story_params = "", ()
        if story_ids is not None:
            story_params = tuple(story_ids)
            story_filter = f" AND i.story_id IN ({','.join('?' * len(story_params))})"
            if not story_params:
                return []
        cur = self.conn.execute(
            "SELECT m.topic, m.score, m.terms, i.id AS item_id, i.story_id, i.title, i.summary, i.lang, i.url, "
            "i.fetched, i.published, f.name AS feed_name "
            "FROM matches m JOIN items i ON i.id = m.item_id JOIN feeds f ON f.id = i.feed_id "
            f"WHERE m.topic IN ({marks}) AND i.fetched > ? AND i.fetched <= ?{story_filter} "
            f"ORDER BY {_EVENT_TIME}, i.id",
            (*topics, iso(since) if since else "", iso(until), *story_params),
        )
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur]
        for row in rows:
            row["terms"] = json.loads(row["terms"])
        return rows

    def reader_languages(self) -> list[str]:
        """The languages active readers read in."""
        return [r[0] for r in self.conn.execute("SELECT DISTINCT lang FROM subscribers WHERE paused IS NULL")]

    def watchword_owner(self, watchword_id: int) -> int | None:
        row = self.conn.execute("SELECT chat_id FROM watchwords WHERE id = ?", (watchword_id,)).fetchone()
        return row[0] if row else None

    def alert_record(self, chat_id: int, story_id: int) -> dict | None:
        cur = self.conn.execute(
            "SELECT item_count, sources, langs, updates, sent_at FROM alerts WHERE chat_id = ? AND story_id = ?",
            (chat_id, story_id),
        )
        row = cur.fetchone()
        return dict(zip([d[0] for d in cur.description], row)) if row else None

    def record_alert(self, chat_id: int, story_id: int, *, sources: int, langs: str, updates: int,
                     now: datetime) -> None:
        """Remember what a reader was alerted of (call in the enqueue's transaction)."""
        self.conn.execute(
            "INSERT INTO alerts(chat_id, story_id, item_count, sent_at, sources, langs, updates) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(chat_id, story_id) DO UPDATE SET "
            "item_count = excluded.item_count, sent_at = excluded.sent_at, sources = excluded.sources, "
            "langs = excluded.langs, updates = excluded.updates",
            (chat_id, story_id, sources, iso(now), sources, langs, updates),
        )

    def digest_chats(self) -> list[int]:
        """Chats that take a daily digest and are not paused."""
        return [r[0] for r in self.conn.execute(
            "SELECT chat_id FROM subscribers WHERE mode IN ('digest', 'both') AND paused IS NULL ORDER BY chat_id")]

    def subscriber_created(self, chat_id: int) -> datetime | None:
        row = self.conn.execute("SELECT created_at FROM subscribers WHERE chat_id = ?", (chat_id,)).fetchone()
        return from_iso(row[0]) if row else None

    def mark_digest(self, chat_id: int, scheduled: datetime, next_at: datetime | None = None) -> None:
        """Record the digest of ``scheduled`` as done (call in the enqueue's transaction)."""
        self.conn.execute(
            "UPDATE subscribers SET last_digest_at = ?, next_digest_at = ? WHERE chat_id = ?",
            (iso(scheduled), iso(next_at), chat_id),
        )

    def purge_older_than(self, cutoff: datetime) -> dict[str, int]:
        """Retention: delete what was first seen before ``cutoff``; keep the file compact.

        Items (and their matches), stories with no items left, delivered or
        failed outbox rows, alert records of stories that are gone, cached
        translations and cycle logs.
        Pending messages are never deleted.
        """
        c = iso(cutoff)
        counts = {}
        # the items an active feed still lists stay, however old (see m010_feeds_listed)
        listed = {(feed_id, key) for feed_id, text in self.conn.execute(
            "SELECT id, listed FROM feeds WHERE retired_at IS NULL AND listed IS NOT NULL") for key in text.split()}
        doomed = [item_id for item_id, feed_id, key in self.conn.execute(
            "SELECT id, feed_id, key_hash FROM items WHERE fetched < ?", (c,)) if (feed_id, key) not in listed]
        with self.conn:
            counts["items"] = 0
            for start in range(0, len(doomed), 500):
                chunk = doomed[start:start + 500]
                counts["items"] += self.conn.execute(
                    f"DELETE FROM items WHERE id IN ({','.join('?' * len(chunk))})", chunk).rowcount
            counts["stories"] = self.conn.execute(
                "DELETE FROM stories WHERE last_seen < ? AND NOT EXISTS "
                "(SELECT 1 FROM items WHERE items.story_id = stories.id)", (c,)).rowcount
            counts["outbox"] = self.conn.execute(
                "DELETE FROM outbox WHERE status IN ('sent', 'failed') AND created_at < ?", (c,)).rowcount
            # a story still alive keeps its alert records (else its next report would alert everyone again)
            counts["alerts"] = self.conn.execute(
                "DELETE FROM alerts WHERE sent_at < ? AND NOT EXISTS "
                "(SELECT 1 FROM stories WHERE stories.id = alerts.story_id)", (c,)).rowcount
            counts["translations"] = self.conn.execute(
                "DELETE FROM translations WHERE created_at < ?", (c,)).rowcount
            counts["cycles"] = self.conn.execute("DELETE FROM cycles WHERE started_at < ?", (c,)).rowcount
        counts["story_index"] = self.purge_story_index(cutoff)
        if any(counts.values()):
            self.conn.execute("PRAGMA incremental_vacuum")
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return counts

    def story_members(self, story_ids: Iterable[int]) -> dict[int, list[dict]]:
        """Every item of these stories with its feed name, oldest first: by when it was published
        (when it was fetched for an item without a date, or with one after that), then by id."""
        ids = list(set(story_ids))
        out: dict[int, list[dict]] = {i: [] for i in ids}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            cur = self.conn.execute(
                "SELECT i.story_id, i.id AS item_id, i.title, i.lang, i.url, i.fetched, i.published, "
                "f.name AS feed_name FROM items i JOIN feeds f ON f.id = i.feed_id "
                f"WHERE i.story_id IN ({marks}) ORDER BY {_EVENT_TIME}, i.id",
                chunk,
            )
            names = [d[0] for d in cur.description]
            for r in cur:
                row = dict(zip(names, r))
                out[row["story_id"]].append(row)
        return out

    # -- trend ---------------------------------------------------------------

    def trend_counts(self, days: int, now: datetime | None = None, topics: Iterable[str] | None = None,
                     utc_offset_minutes: int = 0) -> list[tuple[str, str, str, int]]:
        """Matched stories per day, topic and language over the last ``days`` days.

        Returns ``(day, topic, lang, stories)`` rows sorted by day, topic, lang, where
        ``day`` is a ``YYYY-MM-DD`` date at ``utc_offset_minutes`` from UTC (the
        reader's zone; Asia/Almaty is +300) and ``stories`` counts distinct stories
        (an item not yet in a story counts as its own). An item's day is its
        published time, else its fetched time. The window is the ``days`` local
        days ending today, today included; reader watch words (``watch:...``) are
        left out. Only days with at least one story appear.
        """
        from datetime import time as time_of_day, timedelta, timezone

        if days < 1:
            raise ValueError(f"trend: days must be at least 1, not {days}")
        now = now or utcnow()
        offset = timedelta(minutes=utc_offset_minutes)
        local_today = (now.astimezone(timezone.utc) + offset).date()
        start = datetime.combine(local_today - timedelta(days=days - 1), time_of_day(0), timezone.utc) - offset
        end = datetime.combine(local_today + timedelta(days=1), time_of_day(0), timezone.utc) - offset
        when = "COALESCE(i.published, i.fetched)"
        sql = (
            f"SELECT date({when}, ?) AS day, m.topic, i.lang, "
            "COUNT(DISTINCT COALESCE(i.story_id, -i.id)) AS stories "
            "FROM matches m JOIN items i ON i.id = m.item_id "
            f"WHERE m.topic NOT LIKE 'watch:%' AND {when} >= ? AND {when} < ? "
        )
        params: list = [f"{utc_offset_minutes:+d} minutes", iso(start), iso(end)]
        if topics is not None:
            wanted = list(dict.fromkeys(topics))
            if not wanted:
                return []
            sql += "AND m.topic IN (" + ",".join("?" * len(wanted)) + ") "
            params += wanted
        sql += "GROUP BY day, m.topic, i.lang ORDER BY day, m.topic, i.lang"
        return [(r[0], r[1], r[2], r[3]) for r in self.conn.execute(sql, params)]

    def trend_rows(self, days: int, topic: str | None = None, now: datetime | None = None,
                   utc_offset_minutes: int = 0) -> list[tuple[str, str, str, int]]:
        """:meth:`trend_counts` for one topic (``topic``) or all of them (None)."""
        return self.trend_counts(days, now=now, topics=None if topic is None else [topic],
                                 utc_offset_minutes=utc_offset_minutes)
