"""The command line: ``python -m bot <verb> [options]``.

Errors a user can fix (a bad config, an unknown feed) are printed as one
plain line on stderr with a non-zero exit; tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

from . import config as config_mod
from .errors import ConfigError, NewsBotError

EXIT_USAGE = 2
EXIT_CONFIG = 78  # EX_CONFIG

EPILOG = textwrap.dedent(
    """\
    examples:
      python -m bot demo                         run the whole pipeline offline on bundled feeds
      python -m bot check --config config.toml   validate a config file
      python -m bot poll --json                  poll every feed once, one JSON object per new item
      python -m bot digest --chat 42 --dry-run   print the digest chat 42 would get now
      TELEGRAM_BOT_TOKEN=... python -m bot run   the service: polling, alerts, digests, the bot
      python -m bot status                       health of a running service, from its database
      python -m bot feeds add https://example.org/rss.xml --lang en --name Example
      python -m bot feeds export > feeds.opml    feeds as OPML (import reads one back)
      python -m bot trend --days 14 --out trend.png

    The config file is --config PATH, else $BOT_CONFIG, else ./config.toml.
    The Telegram token is read from $TELEGRAM_BOT_TOKEN, never from the config.
    """
)


def _add_config(p: argparse.ArgumentParser, *, nested: bool = False) -> None:
    # nested: an action's own --config (feeds list --config X), which must not reset the verb's when absent
    p.add_argument("--config", metavar="PATH", help="config file (default: $BOT_CONFIG or ./config.toml)",
                   **({"default": argparse.SUPPRESS} if nested else {}))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="newsbot: a multilingual news monitor with a Telegram bot.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")

    def verb(name: str, help_text: str, example: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text,
                           epilog=f"example:\n  {example}", formatter_class=argparse.RawDescriptionHelpFormatter)
        return p

    p = verb("run", "run the service (poll, alerts, digests, the Telegram bot) until SIGINT/SIGTERM",
             "TELEGRAM_BOT_TOKEN=123:abc python -m bot run --config config.toml")
    _add_config(p)

    p = verb("poll", "fetch every active feed once now, store and match new items, then exit",
             "python -m bot poll --json > new-items.jsonl")
    _add_config(p)
    p.add_argument("--json", action="store_true", help="one JSON object per line for each new item")

    p = verb("digest", "build the digest now (for one chat, or every subscriber) and send or print it",
             "python -m bot digest --chat 42 --dry-run")
    _add_config(p)
    p.add_argument("--chat", type=int, help="only this chat id")
    p.add_argument("--dry-run", action="store_true", help="print the Telegram HTML, send nothing")

    p = verb("check", "validate the config file and exit (non-zero on error)", "python -m bot check --config config.toml")
    _add_config(p)

    p = verb("demo", "run the whole pipeline offline on the bundled sample feeds and print the result",
             "python -m bot demo")
    p.add_argument("--keep", metavar="DIR", help="keep the demo database in DIR instead of a temporary folder")

    p = verb("status", "print the service's health from its database (exit 1 when unhealthy)",
             "python -m bot status --config /data/config.toml")
    _add_config(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = verb("feeds", "manage feeds: list, add, remove, import (OPML), export (OPML)",
             "python -m bot feeds import subscriptions.opml --lang ru")
    _add_config(p)
    fsub = p.add_subparsers(dest="feeds_verb", metavar="ACTION")
    _add_config(fsub.add_parser("list", help="list the feeds with their state"), nested=True)
    a = fsub.add_parser("add", help="validate (fetch and parse once) and add a feed")
    _add_config(a, nested=True)
    a.add_argument("url")
    a.add_argument("--lang", required=True, choices=("en", "ru", "kk"))
    a.add_argument("--name", default="")
    r = fsub.add_parser("remove", help="retire a feed (its items stay)")
    _add_config(r, nested=True)
    r.add_argument("feed", help="feed id or URL")
    i = fsub.add_parser("import", help="add the feeds of an OPML file")
    _add_config(i, nested=True)
    i.add_argument("file", help="OPML file, or - for stdin")
    i.add_argument("--lang", default="en", choices=("en", "ru", "kk"),
                   help="language for outlines that do not declare one")
    e = fsub.add_parser("export", help="write the active feeds as OPML")
    _add_config(e, nested=True)
    e.add_argument("--out", default="-", help="file (default stdout)")

    p = verb("trend", "write a PNG chart of matched stories per topic per day, by language",
             "python -m bot trend --topic kz-unrest --days 30 --out trend.png")
    _add_config(p)
    p.add_argument("--topic", help="one topic id (default: all)")
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--out", default="trend.png")
    return parser


class _RedactingFormatter(logging.Formatter):
    """Log lines with the secrets taken out: the bot token (python-telegram-bot puts it in some
    messages, an InvalidToken's among them) and the translator's API key (some providers take it
    in the URL). A secret in a log file is a leaked secret."""

    def __init__(self, fmt: str, secrets: list[str]):
        super().__init__(fmt)
        self.secrets = secrets  # the list itself: a key read with the config later is added to it

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self.secrets:
            if len(secret) >= 8:
                text = text.replace(secret, "<secret>")
        return text


_SECRETS: list[str] = []


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    _SECRETS[:] = [os.environ.get(config_mod.TOKEN_ENV, "")]
    handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", _SECRETS))
    logging.basicConfig(level=level, handlers=[handler])
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    # APScheduler says "Running job" and "executed successfully" at INFO for every run of every job
    # (the poll tick is 5 s): about 50,000 lines a day that say nothing. Its warnings and errors stay.
    if verbose < 2:
        logging.getLogger("apscheduler").setLevel(logging.WARNING)


def load_config(args) -> config_mod.Config:
    cfg = config_mod.load(config_mod.resolve_path(getattr(args, "config", None)))
    _SECRETS.extend(s for s in (cfg.telegram.token, cfg.translation.api_key) if s and s not in _SECRETS)
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verb:
        parser.print_help()
        return EXIT_USAGE
    setup_logging(args.verbose if args.verb != "run" else max(args.verbose, 1))
    try:
        return VERBS[args.verb](args)
    except ConfigError as exc:
        for error in exc.errors:  # every problem the file has, a line each
            print(f"config error: {error.line}", file=sys.stderr)
        return EXIT_CONFIG
    except NewsBotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): not an error of ours
        _point_at_nothing(sys.stdout)
        return 0


def _point_at_nothing(stream) -> None:
    """After a broken pipe: the interpreter flushes stdout at exit, so send it to /dev/null."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
    except (OSError, ValueError):
        pass


# -- verbs --------------------------------------------------------------------


def cmd_check(args) -> int:
    cfg = load_config(args)
    print(f"{cfg.path}: ok ({len(cfg.feeds)} feeds, {len(cfg.topics)} topics, "
          f"translation {cfg.translation.provider} -> {cfg.translation.target})")
    if cfg.default_topics:
        print(f"note: no [[topics]] in the file: the shipped topics apply ({', '.join(t.id for t in cfg.topics)}); "
              "`topics = []` means none")
    if cfg.translation.provider != "none":
        from .translate import Translator
        from .store import Store

        with Store(":memory:") as store:
            for warning in Translator(cfg.translation, store).startup_warnings():
                print(f"warning: {warning}")
    if not cfg.telegram.token:
        print("note: TELEGRAM_BOT_TOKEN is not set; `run` needs it, `poll` and `digest --dry-run` do not")
    return 0


def item_json(new) -> dict:
    item = new.item
    return {
        "id": item.id,
        "feed": new.feed_name,
        "lang": item.lang,
        "title": item.title,
        "url": item.url,
        "published": item.published.isoformat().replace("+00:00", "Z") if item.published else None,
        "topics": sorted({m.topic for m in new.matches if not m.topic.startswith("watch:")}),
        "story": new.story_id,
        "title_en": new.title_target,
    }


def cmd_poll(args) -> int:
    from .pipeline import Pipeline
    from .store import Store

    cfg = load_config(args)
    with Store(cfg.storage.path) as store:
        store.sync_feeds(cfg.feeds)
        progress = None
        if not args.json:
            progress = _progress_printer()
            if not args.verbose:  # each failed feed has its progress line and summary row: not a log line too
                for handler in logging.getLogger().handlers:
                    handler.addFilter(_shown_by_progress)
        # items are written out as they are finished, not held until the end of the cycle
        writer = _JsonLines(sys.stdout) if args.json else None
        with Pipeline.from_config(store, cfg) as pipeline:
            report = asyncio.run(pipeline.run_cycle(force=True, progress=progress,
                                                    on_item=writer.write if writer else _ignore))
    if writer is not None:
        writer.close()
    else:
        _print_poll_summary(report)
    if not report.feeds:
        print("poll: no active feeds: add [[feeds]] to the config, or "
              "`python -m bot feeds add URL --lang en|ru|kk`", file=sys.stderr)
    return 0


def _shown_by_progress(record: logging.LogRecord) -> bool:
    return not (record.name == "bot.pipeline" and str(record.msg).startswith(("feed failed", "feed retired")))


def _ignore(_new) -> None:
    pass


class _JsonLines:
    """``poll --json``'s output: one line per item. When the reader goes away (``| head``),
    the rest is dropped quietly and the cycle still completes."""

    def __init__(self, out):
        self.out = out
        self.closed = False
        self._encode = json.JSONEncoder(ensure_ascii=False).encode

    def write(self, new) -> None:
        if self.closed:
            return
        try:
            self.out.write(self._encode(item_json(new)) + "\n")
        except BrokenPipeError:
            self._gone()

    def close(self) -> None:
        if not self.closed:
            try:
                self.out.flush()
            except BrokenPipeError:
                self._gone()

    def _gone(self) -> None:
        self.closed = True
        _point_at_nothing(self.out)


def _feed_label(fr) -> str:
    """A feed's name; a feed named after its host (no name in the config) shows its path too,
    so that two feeds of one site can be told apart."""
    parts = urlsplit(fr.url or "")
    if fr.name == parts.hostname and parts.path not in ("", "/"):
        return fr.name + parts.path
    return fr.name


def _progress_printer():
    tty = sys.stderr.isatty()

    def show(done: int, total: int, fr) -> None:
        state = f"error: {fr.error}" if fr.error else ("not modified" if fr.not_modified else f"{fr.new} new")
        if fr.retired:
            state += " (retired)"
        line = f"[{done}/{total}] {_feed_label(fr)}: {state}"
        if tty:
            sys.stderr.write("\r\033[K" + line[:200])
            if done == total:
                sys.stderr.write("\n")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    return show


def _print_poll_summary(report) -> None:
    labels = {id(f): _feed_label(f) for f in report.feeds}
    width = max((len(label) for label in labels.values()), default=4)
    print(f"{'feed':<{width}}  {'new':>5}  result")
    for f in sorted(report.feeds, key=lambda f: labels[id(f)].lower()):
        result = f.error or ("not modified" if f.not_modified else f"HTTP {f.status}")
        if f.retired:
            result += " (retired)"
        print(f"{labels[id(f)]:<{width}}  {f.new:>5}  {result}")
    secs = (report.finished - report.started).total_seconds() if report.finished else 0
    print(f"{len(report.feeds)} feeds, {report.new_count} new items, {report.matched_count} matched, "
          f"{report.errors} errors in {secs:.1f}s")


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(keep=Path(args.keep) if args.keep else None)


def cmd_run(args) -> int:
    from .service import run_service

    return run_service(load_config(args))


def cmd_digest(args) -> int:
    from .service import digest_command

    return digest_command(load_config(args), chat_id=args.chat, dry_run=args.dry_run)


def cmd_status(args) -> int:
    from .service import status_command

    return status_command(load_config(args), as_json=args.json)


def cmd_feeds(args) -> int:
    from .feeds_cli import feeds_command

    return feeds_command(load_config(args), args)


def cmd_trend(args) -> int:
    from .feeds_cli import trend_command

    return trend_command(load_config(args), args)


VERBS = {
    "check": cmd_check,
    "poll": cmd_poll,
    "demo": cmd_demo,
    "run": cmd_run,
    "digest": cmd_digest,
    "status": cmd_status,
    "feeds": cmd_feeds,
    "trend": cmd_trend,
}

if __name__ == "__main__":
    sys.exit(main())
