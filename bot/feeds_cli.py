"""``python -m bot feeds ...`` and ``python -m bot trend``: operator verbs on the database."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from .config import Config
from .errors import NewsBotError
from .feedcheck import check_feed
from .store import Store


def feeds_command(cfg: Config, args, out=None) -> int:
    out = out or sys.stdout
    action = getattr(args, "feeds_verb", None) or "list"
    with Store(cfg.storage.path) as store:
        store.sync_feeds(cfg.feeds)
        if action == "list":
            return _list(store, out)
        if action == "add":
            return _add(store, cfg, args.url, args.lang, args.name, out)
        if action == "remove":
            feed = store.remove_feed(args.feed)
            if feed is None:
                raise NewsBotError(f"feeds: no feed {args.feed!r} (see `python -m bot feeds list`)")
            print(f"retired feed #{feed.id} {feed.name} ({feed.url}); its items are kept", file=out)
            if any(f.url == feed.url for f in cfg.feeds):
                print(f"note: it is still listed in {cfg.path}; it stays retired (until `feeds add`), "
                      "but remove it there too to keep the config true", file=out)
            return 0
        if action == "import":
            return _import(store, args.file, args.lang, out)
        if action == "export":
            return _export(store, args.out, out)
    raise NewsBotError(f"feeds: unknown action {action!r}")


def _list(store: Store, out) -> int:
    feeds = store.feeds(include_retired=True)
    if not feeds:
        print("no feeds", file=out)
        return 0
    for f in feeds:
        state = "retired" if f.retired else ("failing x%d: %s" % (f.failures, f.last_error) if f.failures else "ok")
        print(f"#{f.id:<4} {f.lang}  {f.name}  {f.url}  [{state}]", file=out)
    return 0


def _add(store: Store, cfg: Config, url: str, lang: str, name: str, out) -> int:
    check = asyncio.run(check_feed(url, lang, cfg.poll, allow_private=cfg.telegram.allow_private_feed_urls))
    if not check.ok:
        raise NewsBotError(f"feeds add: {url}: {check.message}")
    feed = store.add_feed(check.final_url or url, lang, name or check.title or url, source="cli")
    print(f"added feed #{feed.id} {feed.name} ({check.entries} entries now)", file=out)
    return 0


def _import(store: Store, file: str, lang: str, out) -> int:
    from .opml import OPMLError, parse_opml

    data = sys.stdin.buffer.read() if file == "-" else _read(file)
    try:
        feeds = parse_opml(data, default_lang=lang)
    except OPMLError as exc:
        raise NewsBotError(f"feeds import: {exc}") from None
    known = {f.url for f in store.feeds(include_retired=True)}
    added = 0
    for f in feeds:
        if f["url"] in known:
            continue
        store.add_feed(f["url"], f["lang"], f["name"] or f["url"], source="opml")
        known.add(f["url"])
        added += 1
    print(f"imported {added} new feed(s) of {len(feeds)} in the file", file=out)
    return 0


def _export(store: Store, dest: str, out) -> int:
    from .opml import export_opml

    data = export_opml([{"url": f.url, "name": f.name, "lang": f.lang} for f in store.feeds()])
    if dest == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        Path(dest).write_bytes(data)
        print(f"wrote {dest}", file=out)
    return 0


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise NewsBotError(f"cannot read {path}: {exc.strerror}") from None


def trend_command(cfg: Config, args, out=None) -> int:
    from .trend import local_day, render_trend

    out = out or sys.stdout
    if args.days < 1 or args.days > 366:
        raise NewsBotError("trend: --days must be between 1 and 366")
    names = {t.id: t.name for t in cfg.topics}
    if args.topic and args.topic not in names:
        raise NewsBotError(f"trend: unknown topic {args.topic!r} (topics: {', '.join(names)})")
    offset, today = local_day(cfg.digest.timezone)  # days as the readers' default time zone counts them
    with Store(cfg.storage.path) as store:
        rows = store.trend_rows(args.days, topic=args.topic, utc_offset_minutes=offset)
    try:
        render_trend(rows, names if not args.topic else {args.topic: names[args.topic]}, args.days, args.out,
                     end=today)
    except OSError as exc:
        raise NewsBotError(f"trend: cannot write {args.out}: {exc.strerror}") from None
    print(f"wrote {args.out}", file=out)
    return 0
