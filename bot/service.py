"""``python -m bot run``: one process that polls, matches, clusters, translates
and delivers until it is stopped; plus the ``digest`` and ``status`` verbs.

One scheduler: python-telegram-bot's JobQueue (APScheduler's AsyncIOScheduler
in the bot's event loop) runs the named jobs below. The outbox sender runs
as one long-lived task beside it and is woken whenever something is queued.

Jobs:
- ``poll`` every few seconds: feeds whose own next-poll time has come (each
  feed has its own interval, adaptive and jittered, so a thousand feeds are
  spread out), then alerts for what was new;
- ``digests`` every 30 s: readers whose local digest time has come;
- ``translations`` each minute: translations that failed earlier are retried;
- ``retention`` hourly: old items, stories and sent messages are deleted;
- ``heartbeat`` every 15 s: a timestamp that ``status`` reads.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import signal
import sys
from datetime import datetime, timedelta

from . import alerts
from .config import Config
from .errors import NewsBotError
from .models import from_iso, iso, utcnow
from .store import Store

log = logging.getLogger(__name__)

POLL_TICK = 5.0
DIGEST_TICK = 30.0
HEARTBEAT = 15.0
HEARTBEAT_KEY = "service_heartbeat"
ALERTS_MARK_KEY = "alerts_planned_to"  # the newest item id whose alerts have been planned
STOP_GRACE = 8.0  # seconds to finish in-flight work after SIGTERM (the whole stop stays under 10 s)


class Service:
    """The running service's state and jobs, independent of how it is started."""

    def __init__(self, cfg: Config, store: Store, *, bot=None, clock=utcnow):
        from .pipeline import Pipeline

        self.cfg = cfg
        self.store = store
        self.clock = clock
        self.pipeline = Pipeline.from_config(store, cfg, clock=clock)
        self.translator = self.pipeline.translator
        self.sender = None
        if bot is not None:
            from .delivery import Sender

            self.sender = Sender(bot, store, cfg.delivery, clock=clock)  # due rows, quiet-hours holds: our clock
        self._sender_task: asyncio.Task | None = None
        self._stop = asyncio.Event()
        self._busy = asyncio.Lock()

    # -- lifecycle -----------------------------------------------------------

    async def start(self, job_queue=None) -> None:
        for warning in (self.translator.startup_warnings() if self.translator else []):
            log.warning("translation %s", warning)
        self.store.set_kv(HEARTBEAT_KEY, iso(self.clock()))
        self.store.set_kv("service_started", iso(self.clock()))
        if self.sender is not None:
            self._sender_task = asyncio.create_task(self.sender.run_forever(self._stop), name="outbox-sender")
        if job_queue is not None:
            # feeds are due on their own (jittered) schedules; the tick only bounds how late one is seen
            tick = max(0.5, min(POLL_TICK, self.cfg.poll.min_interval_seconds / 2, self.cfg.poll.interval_seconds / 2))
            job_queue.run_repeating(self._job(self.poll_once), interval=tick, first=0.5, name="poll",
                                    job_kwargs={"max_instances": 1, "coalesce": True, "misfire_grace_time": 60})
            job_queue.run_repeating(self._job(self.digests_once), interval=DIGEST_TICK, first=1.0, name="digests",
                                    job_kwargs={"max_instances": 1, "coalesce": True, "misfire_grace_time": 60})
            job_queue.run_repeating(self._job(self.translations_once), interval=60, first=20, name="translations",
                                    job_kwargs={"max_instances": 1, "coalesce": True})
            job_queue.run_repeating(self._job(self.retention_once), interval=3600, first=5, name="retention",
                                    job_kwargs={"max_instances": 1, "coalesce": True})
            job_queue.run_repeating(self._job(self.heartbeat), interval=HEARTBEAT, first=HEARTBEAT, name="heartbeat",
                                    job_kwargs={"max_instances": 1, "coalesce": True})
        log.info("service started feeds=%d topics=%d", len(self.store.feeds()), len(self.cfg.topics))

    async def stop(self) -> None:
        """Stop taking new work; let the sender finish its in-flight message."""
        self._stop.set()
        if self._sender_task is not None:
            try:
                await asyncio.wait_for(self._sender_task, timeout=STOP_GRACE)
            except asyncio.TimeoutError:
                log.warning("sender did not stop in %.0fs; pending messages stay queued", STOP_GRACE)
                self._sender_task.cancel()
            except Exception:
                log.exception("sender failed while stopping")
        try:  # the pipeline's worker processes finish the job in hand (a parse takes milliseconds)
            await asyncio.wait_for(asyncio.to_thread(self.pipeline.close), timeout=1.5)
        except asyncio.TimeoutError:
            log.warning("pipeline workers did not stop in 1.5s; they exit after their job")
        log.info("service stopped")

    def _job(self, fn):
        async def run(context=None) -> None:
            if self._stop.is_set():
                return
            try:
                await fn()
            except Exception:  # a failing job is logged, never stops the service
                log.exception("job failed job=%s", fn.__name__)

        run.__name__ = fn.__name__
        return run

    # -- jobs ------------------------------------------------------------------

    async def poll_once(self, force: bool = False) -> int:
        """Poll the feeds that are due, then queue alerts. Returns alerts queued."""
        async with self._busy:
            mark = self.store.get_kv(ALERTS_MARK_KEY)
            if mark is None:  # the first cycle ever: nothing before it is owed an alert
                mark = str(self.store.newest_item_id())
                self.store.set_kv(ALERTS_MARK_KEY, mark)
            report = await self.pipeline.run_cycle(force=force)
            # items stored after the mark but not in this cycle's report: a cycle that died before its
            # alerts were planned (a crash, a kill), or another process's `poll`; planning them again
            # is harmless (an alert already recorded is not queued twice)
            newest = self.store.newest_item_id()
            missed = self._unplanned(int(mark), newest, {n.item.id for n in report.new_items})
            new_items = [*missed, *report.new_items]
            matched = [n for n in new_items if n.matches]
            if not report.feeds and not missed:
                self._advance_mark(mark, newest)  # (the tick when nothing is due writes nothing)
                return 0
            if self.translator is not None and matched:
                # headlines for every reader language in use, before the alerts are rendered
                langs = set(self.store.reader_languages()) - {self.cfg.translation.target}
                if langs:
                    await self.translator.warm([(n.item.title, n.item.lang) for n in matched], langs)
            queued = alerts.plan_alerts(self.store, self.cfg, new_items, self.clock(), self._cached)
            self._advance_mark(mark, newest)
            if queued and self.sender is not None:
                self.sender.wake()
            log.info("cycle summary feeds=%d new=%d matched=%d alerts=%d errors=%d", len(report.feeds),
                     report.new_count, report.matched_count, queued, report.errors)
            return queued

    def _advance_mark(self, mark: str, newest: int) -> None:
        """Alerts are planned up to ``newest``; a recent matched item in no story yet (its filing
        failed, or another process is still filing it) is alerted by a later cycle, once it is
        filed: the mark stays below it."""
        unfiled = self.store.first_unfiled_matched(
            int(mark), newest, self.clock() - timedelta(hours=self.cfg.poll.alert_max_age_hours))
        upto = str(unfiled - 1 if unfiled is not None else newest)
        if upto != mark:
            self.store.set_kv(ALERTS_MARK_KEY, upto)

    def _unplanned(self, after: int, upto: int, reported: set[int]) -> list:
        """The matched items in (after, upto] that no cycle of this process reported."""
        from .pipeline import NewItem

        out = []
        for item_id in self.store.matched_item_ids(after, upto):
            if item_id in reported:
                continue
            item = self.store.item(item_id)
            if item is None or item.story_id is None:
                continue  # gone meanwhile (retention), or not filed yet: nothing to alert
            feed = self.store.feed(item.feed_id)
            out.append(NewItem(item=item, feed_name=feed.name if feed else "", story_id=item.story_id,
                               matches=self.store.matches_for(item_id)))
        if out:
            log.info("alerts caught up for items stored outside this process's cycles items=%d first=%d",
                     len(out), out[0].item.id)
        return out

    async def digests_once(self) -> int:
        if self.translator is not None:
            await self.translator.fill_pending(limit=200)
        queued = alerts.plan_digests(self.store, self.cfg, self.clock(), self._cached)
        if queued and self.sender is not None:
            self.sender.wake()
        return queued

    async def translations_once(self) -> None:
        if self.translator is not None:
            await self.translator.fill_pending(limit=200)

    async def retention_once(self) -> dict:
        counts = self.store.purge_older_than(self.clock() - timedelta(days=self.cfg.retention.days))
        give_back_memory()
        if any(counts.values()):
            log.info("retention %s", " ".join(f"{k}={v}" for k, v in counts.items()))
        return counts

    async def heartbeat(self) -> None:
        self.store.set_kv(HEARTBEAT_KEY, iso(self.clock()))

    def _cached(self, text: str, src: str, dst: str) -> str | None:
        if self.translator is None or src == dst:
            return None
        return self.translator.cached(text, src, dst)


def give_back_memory() -> bool:
    """Ask the C allocator to hand its free pages back to the OS (glibc's ``malloc_trim``);
    False where there is no such call (musl, macOS).

    glibc keeps memory that SQLite and Python's large objects freed; after the hourly retention
    run that can be tens of MB (bench.soak: a week ended at 169 MB instead of 194 MB)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.cache
def _malloc_trim():
    import ctypes

    try:
        return ctypes.CDLL(None).malloc_trim  # (the C library this process already has loaded)
    except (OSError, AttributeError):
        return None


# -- run ------------------------------------------------------------------------


BOOTSTRAP_RETRIES = 6  # about 30 s of tries before `run` gives up on an unreachable Bot API


def run_service(cfg: Config) -> int:
    """Run until SIGINT/SIGTERM. Needs TELEGRAM_BOT_TOKEN."""
    if not cfg.telegram.token:
        raise NewsBotError("run: TELEGRAM_BOT_TOKEN is not set (the token is read from the environment only); "
                           "try `python -m bot demo` to see the pipeline without Telegram")
    from .telegram import build_application

    store = Store(cfg.storage.path)
    store.sync_feeds(cfg.feeds)
    holder: dict = {}  # the Service and the sender's Bot, once started

    async def post_init(app) -> None:
        from .delivery import make_bot

        log.info("connected to the Bot API as @%s", app.bot.username)
        # the outbox sender has its own Bot on bot.delivery.LeanRequest (a fraction of httpx's CPU
        # per message); the Application's bot (httpx) answers the updates
        sender_bot = make_bot(cfg, lean=True)
        await sender_bot.initialize()
        holder["sender_bot"] = sender_bot
        service = Service(cfg, store, bot=sender_bot)
        holder["service"] = service
        await service.start(app.job_queue)

    async def post_stop(app) -> None:
        if "service" in holder:
            await holder["service"].stop()
        if "sender_bot" in holder:
            await holder.pop("sender_bot").shutdown()

    def watchwords_changed(*_args) -> None:
        service = holder.get("service")
        if service is not None and service.pipeline.matcher is not None:
            service.pipeline.matcher.set_watchwords(store.all_watchwords())

    async def translate(text: str, src: str, dst: str) -> str | None:
        service = holder.get("service")
        if service is None or service.translator is None:
            return None
        return await service.translator.translate(text, src, dst)

    hooks = {
        "post_init": post_init,
        "post_stop": post_stop,
        "digest_now": lambda chat_id: digest_now(store, cfg, chat_id, holder.get("service")),
        "watchwords_changed": watchwords_changed,
        "translate": translate,
    }
    app = build_application(cfg, store, hooks)
    from telegram.error import InvalidToken, NetworkError

    def no_traceback(record: logging.LogRecord) -> bool:
        # PTB logs a rejected token and network failures with a traceback: at start the one line
        # below says it all, and later (a getUpdates that failed) its own message line does
        if record.exc_info and isinstance(record.exc_info[1], (InvalidToken, NetworkError)):
            record.exc_info = record.exc_text = None
        return True

    logging.getLogger("telegram.ext").addFilter(no_traceback)  # (the logger PTB's retry loop uses)
    # (PTB logs its tries at DEBUG: without this line a Bot API that cannot be reached looks like a hang)
    log.info("connecting to the Bot API at %s (up to %d tries, about 30 s)", cfg.telegram.base_url,
             BOOTSTRAP_RETRIES + 1)
    try:
        # a Bot API that cannot be reached at start is tried again for a while (PTB waits 1 s, then
        # half as long again each time up to 30 s); then the service exits for its supervisor to restart it
        app.run_polling(stop_signals=(signal.SIGINT, signal.SIGTERM), drop_pending_updates=False,
                        close_loop=True, bootstrap_retries=BOOTSTRAP_RETRIES)
    except InvalidToken:
        raise NewsBotError("run: the Bot API rejected the token in TELEGRAM_BOT_TOKEN (401 Unauthorized); "
                           "check it with @BotFather (and telegram.base_url, for a Bot API server of "
                           "your own)") from None
    except NetworkError as exc:  # TimedOut too
        raise NewsBotError(f"run: cannot reach the Bot API at {cfg.telegram.base_url} "
                           f"({BOOTSTRAP_RETRIES + 1} tries): {exc}") from None
    finally:
        store.close()
    return 0


def digest_now(store: Store, cfg: Config, chat_id: int, service: Service | None = None) -> int:
    """Queue a reader's digest now (the /digest command). Returns messages queued."""
    sub = store.subscriber(chat_id)
    if sub is None:
        return 0
    now = utcnow()
    reader = alerts.reader_for(store, sub)
    since = sub.last_digest_at or now - timedelta(days=1)
    translate = service._cached if service else None
    messages = alerts.digest_messages(store, cfg, alerts.Reader(**{**reader.__dict__, "skip_empty": False}),
                                      since, now, translate)
    queue_manual_digest(store, chat_id, messages, now)
    if service is not None and service.sender is not None:
        service.sender.wake()
    return len(messages)


def queue_manual_digest(store: Store, chat_id: int, messages: list[str], now: datetime) -> int:
    """Queue a digest asked for now (/digest, the digest verb); returns the messages queued."""
    queued = 0
    with store.conn:
        for i, text in enumerate(messages):
            if store.enqueue(chat_id, "digest", text, dedup_key=f"digest:{chat_id}:manual:{iso(now)}:{i}",
                             disable_preview=True):
                queued += 1
    return queued


# -- digest verb ------------------------------------------------------------------


def digest_command(cfg: Config, chat_id: int | None = None, dry_run: bool = False, out=None) -> int:
    """``python -m bot digest``: print (dry run) or send the digest now."""
    from .digest import default_reader
    from .translate import Translator

    out = out or sys.stdout
    now = utcnow()
    with Store(cfg.storage.path) as store:
        translator = Translator(cfg.translation, store) if cfg.translation.provider != "none" else None
        cached = (lambda t, s, d: translator.cached(t, s, d)) if translator else None
        if chat_id is None:
            reader = default_reader(cfg)
            since = now - timedelta(days=1)
            targets = [(None, reader, since)]
            if not dry_run:
                targets = [(c, alerts.reader_for(store, store.subscriber(c)), None) for c in store.digest_chats()]
        else:
            sub = store.subscriber(chat_id)
            if sub is None:
                raise NewsBotError(f"digest: no subscriber with chat id {chat_id}")
            reader = alerts.reader_for(store, sub)
            targets = [(chat_id, reader, sub.last_digest_at)]
        sent = 0
        printed = []
        for chat, reader, since in targets:
            since = since or now - timedelta(days=1)
            reader.skip_empty = False
            messages = alerts.digest_messages(store, cfg, reader, since, now, cached)
            if dry_run:
                printed.extend(messages)
                continue
            sent += queue_manual_digest(store, chat, messages, now)
        if dry_run:
            out.write("\n-----\n".join(printed) + "\n")
            return 0
        if not cfg.telegram.token:
            print(f"{sent} digest message(s) queued; they are sent when `python -m bot run` is running "
                  "(TELEGRAM_BOT_TOKEN is not set here)", file=out)
            return 0
        delivered = asyncio.run(_drain(cfg, store))
        print(f"{sent} digest message(s) queued, {delivered} sent", file=out)
    return 0


async def _drain(cfg: Config, store: Store, timeout: float = 120.0) -> int:
    """Send what the outbox holds now, then return (for one-shot CLI sends)."""
    from .delivery import Sender, make_bot

    bot = make_bot(cfg, lean=True)
    async with bot:
        sender = Sender(bot, store, cfg.delivery)
        return await asyncio.wait_for(sender.drain(), timeout=timeout)


# -- status verb --------------------------------------------------------------------


def health(store: Store, cfg: Config, now: datetime) -> dict:
    """The service's health as the database shows it."""
    beat = from_iso(store.get_kv(HEARTBEAT_KEY))
    last = store.last_cycle()
    feeds = store.feeds()
    failing = [f for f in feeds if f.failures > 0]
    outbox = dict(store.conn.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())
    oldest_pending = store.conn.execute(
        "SELECT min(created_at) FROM outbox WHERE status IN ('pending', 'sending')").fetchone()[0]
    subscribers = store.count("subscribers")
    next_digests = []
    for chat_id in store.digest_chats()[:1000]:
        sub = store.subscriber(chat_id)
        nxt = alerts.subscriber_next_digest(sub, now) if sub else None
        if nxt:
            next_digests.append((nxt, chat_id))
    next_digests.sort()
    problems = []
    stale_after = max(3 * HEARTBEAT, 60)
    if beat is None:
        problems.append("the service has never run against this database")
    elif (now - beat).total_seconds() > stale_after:
        problems.append(f"no heartbeat for {int((now - beat).total_seconds())}s (service down or stuck)")
    if feeds and len(failing) == len(feeds):
        problems.append("every feed is failing")
    if oldest_pending and (now - from_iso(oldest_pending)).total_seconds() > 3600:
        problems.append("messages have waited in the outbox for over an hour")
    return {
        "healthy": not problems,
        "problems": problems,
        "heartbeat": iso(beat),
        "last_cycle": last,
        "feeds": len(feeds),
        "failing_feeds": [{"id": f.id, "name": f.name, "failures": f.failures, "error": f.last_error,
                           "next_poll_at": iso(f.next_poll_at)} for f in failing],
        "items": store.count("items"),
        "stories": store.count("stories"),
        "subscribers": subscribers,
        "outbox": outbox,
        "next_digests": [{"chat": c, "at": iso(t)} for t, c in next_digests[:10]],
    }


def status_command(cfg: Config, as_json: bool = False, out=None) -> int:
    out = out or sys.stdout
    if not cfg.storage.path.exists():
        print(f"unhealthy: no database at {cfg.storage.path} (the service has not run yet)", file=out)
        return 1
    with Store(cfg.storage.path) as store:
        h = health(store, cfg, utcnow())
    if as_json:
        print(json.dumps(h, ensure_ascii=False, indent=2), file=out)
        return 0 if h["healthy"] else 1
    print(("healthy" if h["healthy"] else "unhealthy: " + "; ".join(h["problems"])), file=out)
    last = h["last_cycle"]
    if last:
        print(f"last cycle: started {last['started_at']}, finished {last['finished_at'] or 'not yet'}, "
              f"{last['feeds']} feeds, {last['new_items']} new items, {last['errors']} errors", file=out)
    print(f"heartbeat: {h['heartbeat'] or 'never'}", file=out)
    print(f"feeds: {h['feeds']} active, {len(h['failing_feeds'])} failing; items: {h['items']}; "
          f"stories: {h['stories']}; subscribers: {h['subscribers']}", file=out)
    for f in h["failing_feeds"][:20]:
        print(f"  failing: #{f['id']} {f['name']} ({f['failures']}x): {f['error']}; next try {f['next_poll_at']}",
              file=out)
    print("outbox: " + (", ".join(f"{k} {v}" for k, v in sorted(h["outbox"].items())) or "empty"), file=out)
    for d in h["next_digests"]:
        print(f"  next digest: chat {d['chat']} at {d['at']}", file=out)
    return 0 if h["healthy"] else 1
