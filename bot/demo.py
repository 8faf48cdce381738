"""``python -m bot demo``: the whole pipeline, offline, on the bundled sample feeds.

The sample feeds in ``bot/samples`` are served over real HTTP on 127.0.0.1,
polled by the real pipeline into a throw-away SQLite file, and what came out
(languages, topic matches and why, stories across languages, a digest as a
reader would get it) is printed. No token, no network, no translator.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import tempfile
import threading
from collections import Counter, defaultdict
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

from . import config as config_mod
from .models import utcnow

class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the demo's output readable
        pass

    def guess_type(self, path):
        return "application/xml" if str(path).endswith(".xml") else super().guess_type(path)


@contextlib.contextmanager
def serve_directory(directory: Path):
    """Serve a folder on 127.0.0.1 on a free port; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def sample_feeds() -> list[tuple[str, str, str]]:
    """(file name, language, display name) for each bundled sample feed."""
    import json

    index = resources.files("bot.samples").joinpath("index.json")
    return [(f["file"], f["lang"], f["name"]) for f in json.loads(index.read_text("utf-8"))]


def default_topics():
    """The topics of the config in use, else of the repository's config.toml."""
    for candidate in (config_mod.resolve_path(), Path(__file__).resolve().parent.parent / "config.toml"):
        if candidate.exists():
            return config_mod.load(candidate, env={}).topics
    return ()


def run_demo(keep: Path | None = None, out=None) -> int:
    import sys

    out = out or sys.stdout
    with contextlib.ExitStack() as stack:
        workdir = keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="newsbot-demo-")))
        workdir.mkdir(parents=True, exist_ok=True)
        samples = resources.files("bot.samples")
        sample_dir = Path(stack.enter_context(resources.as_file(samples)))
        base = stack.enter_context(serve_directory(sample_dir))
        feeds = sample_feeds()
        raw = {
            "storage": {"path": str(workdir / "demo.db")},
            "translation": {"provider": "none", "target": "en"},
            "feeds": [{"url": f"{base}/{file}", "lang": lang, "name": name} for file, lang, name in feeds],
        }
        cfg = config_mod.from_dict(raw, path=workdir / "demo.toml", env={})
        cfg = dataclasses.replace(cfg, topics=default_topics())
        return _run(cfg, out, workdir if keep else None)


def _run(cfg, out, kept: Path | None) -> int:
    from .pipeline import Pipeline
    from .store import Store

    print(f"newsbot demo: {len(cfg.feeds)} sample feeds served on 127.0.0.1, "
          f"{len(cfg.topics)} topics, translation off\n", file=out)
    with Store(cfg.storage.path) as store:
        store.sync_feeds(cfg.feeds)
        with Pipeline.from_config(store, cfg) as pipeline:
            report = asyncio.run(pipeline.run_cycle(force=True))
        langs = Counter(n.item.lang for n in report.new_items)
        matched = report.matched
        stories = {n.story_id for n in report.new_items}
        print(f"Polled {len(report.feeds)} feeds: {len(report.new_items)} new items "
              f"({', '.join(f'{k} {v}' for k, v in sorted(langs.items()))}), "
              f"{len(matched)} matched a topic, folded into {len(stories)} stories.", file=out)
        for f in report.feeds:
            if f.error:
                print(f"  feed {f.name}: {f.error}", file=out)

        names = {t.id: t.name for t in cfg.topics}
        # in the order the events happened (feeds answer in any order): the same output every run
        from .stories import item_time

        def when(n):
            return (item_time(n.item), n.feed_name, n.item.title)

        by_story: dict[int, list] = defaultdict(list)
        for n in sorted(matched, key=when):
            by_story[n.story_id].append(n)
        print(f"\nMatched stories ({len(by_story)}):", file=out)
        for story_id, members in sorted(by_story.items(), key=lambda kv: (-len(kv[1]), when(kv[1][0]))):
            topics = sorted({m.topic for n in members for m in n.matches})
            story_langs = sorted({n.item.lang.upper() for n in members})
            print(f"\n  story {story_id} · {len(members)} report(s) · {' '.join(story_langs)} · "
                  f"{', '.join(names.get(t, t) for t in topics)}", file=out)
            for n in members:
                why = "; ".join(f"{m.topic}: {', '.join(m.terms)}" for m in n.matches)
                print(f"    [{n.item.lang.upper()}] {n.item.title}", file=out)
                print(f"         {n.feed_name} — matched {why}", file=out)

        unmatched = sorted((n for n in report.new_items if not n.matches), key=when)
        print(f"\nNot matched ({len(unmatched)}), for example:", file=out)
        for n in unmatched[:5]:
            print(f"    [{n.item.lang.upper()}] {n.item.title}", file=out)

        _print_digest(store, cfg, out)
    if kept:
        print(f"\nThe demo database is kept in {kept / 'demo.db'}", file=out)
    return 0


def _print_digest(store, cfg, out) -> None:
    from .alerts import digest_messages
    from .digest import default_reader

    messages = digest_messages(store, cfg, default_reader(cfg), None, utcnow())
    print("\nThe digest a reader in English would get now (Telegram HTML):\n", file=out)
    print("\n-----\n".join(messages), file=out)
