"""Deciding who gets what: instant alerts after a poll, digests at local times.

Both write to the outbox only (delivery is :mod:`bot.delivery`'s job), and each
outbox row is written in the same transaction as the record that it was
planned (the ``alerts`` row, the subscriber's ``last_digest_at``), with a
unique ``dedup_key``. A crash before the commit plans it again; a crash after
it leaves it planned once: nothing lost, nothing planned twice.

The alert rule for a story that grows: a reader gets one alert when a story
first matches for them, and at most one update later, when the story has
grown materially (:func:`bot.stories.grew_materially`: a new language or
several new sources). Further reports of the same story go to the digest.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from . import render
from .clock import next_daily, previous_daily, quiet_until
from .config import Config
from .digest import Reader, gather_stories
from .models import Subscriber, iso

log = logging.getLogger(__name__)


def reader_for(store, sub: Subscriber) -> Reader:
    topics = store.subscribed_topics(sub.chat_id)
    watch = {w.id: w.word for w in store.watchwords(sub.chat_id)}
    return Reader(chat_id=sub.chat_id, lang=sub.lang, topics=list(topics), watch=watch,
                  last_digest_at=sub.last_digest_at, skip_empty=sub.skip_empty_digest, timezone=sub.timezone)


def _fresh(item, cfg: Config, now: datetime) -> bool:
    """Only reports from the last ``alert_max_age_hours`` are alerted (all go to digests)."""
    when = item.published or item.fetched
    return when >= now - timedelta(hours=cfg.poll.alert_max_age_hours)


def plan_alerts(store, cfg: Config, new_items, now: datetime, translate=None) -> int:
    """Queue instant alerts for the stories this cycle's new matches belong to.

    ``new_items`` are :class:`bot.pipeline.NewItem` objects. Returns the number
    of messages queued.
    """
    keys_by_story: dict[int, set[str]] = {}
    for n in new_items:
        if n.matches and n.story_id is not None and _fresh(n.item, cfg, now):
            keys_by_story.setdefault(n.story_id, set()).update(m.topic for m in n.matches)
    if not keys_by_story:
        return 0
    queued = 0
    for story_id, keys in keys_by_story.items():
        readers: dict[int, Subscriber] = {}
        for key in keys:
            if key.startswith("watch:"):
                owner = store.watchword_owner(int(key[6:]))
                sub = store.subscriber(owner) if owner is not None else None
                if sub is not None:
                    readers[sub.chat_id] = sub
            else:
                readers.update((sub.chat_id, sub) for sub in store.subscribers_for_topic(key))
        for chat_id, sub in sorted(readers.items()):
            if sub.paused or sub.mode not in ("instant", "both"):
                continue
            queued += _alert_one(store, cfg, sub, story_id, now, translate, topic_names(cfg, sub.lang))
    return queued


def _alert_one(store, cfg, sub: Subscriber, story_id: int, now: datetime, translate, names) -> int:
    reader = reader_for(store, sub)
    stories = gather_stories(store, reader, None, now, translate, story_ids={story_id}, topic_names=names)
    if not stories:
        return 0  # matched a topic this reader no longer follows
    story = stories[0]
    previous = store.alert_record(sub.chat_id, story_id)
    if previous is None:
        update = 0
    elif previous["updates"] == 0 and _grew(previous, story):
        update = 1
    else:
        return 0
    text = render.render_alert(story, reader.lang).text
    if update:
        text = render.update_prefix(reader.lang) + text
    hold_until = quiet_until(sub.quiet_start, sub.quiet_end, sub.timezone, now)
    with store.conn:  # the record first: it opens the transaction the enqueue then joins
        store.record_alert(sub.chat_id, story_id, sources=len(story.sources), langs=",".join(story.langs),
                           updates=update, now=now)
        created = store.enqueue(
            sub.chat_id, "alert", text, dedup_key=f"alert:{sub.chat_id}:{story_id}:{update}",
            disable_preview=False, not_before=hold_until, now=now,
        )
    if created:
        log.info("alert queued chat=%s story=%s update=%d held_until=%s", sub.chat_id, story_id, update,
                 iso(hold_until))
    return 1 if created else 0


def _grew(previous: dict, story) -> bool:
    from .stories import grew_materially

    return grew_materially(
        old_langs=set(filter(None, (previous["langs"] or "").split(","))), old_sources=previous["sources"],
        new_langs=set(story.langs), new_sources=len(story.sources),
    )


def plan_digests(store, cfg: Config, now: datetime, translate=None, only_chat: int | None = None) -> int:
    """Queue the digests whose local time has come (within the grace window).

    A digest is due when the reader's most recent scheduled time is after the
    last digest they were sent (or after they subscribed) and no more than
    ``[digest] grace_hours`` ago: a service that was down at 08:00 sends the
    08:00 digest when it comes back, once; one that was down all day does not
    send yesterday's.
    """
    grace = timedelta(hours=cfg.digest.grace_hours)
    queued = 0
    for chat_id in store.digest_chats():
        if only_chat is not None and chat_id != only_chat:
            continue
        sub = store.subscriber(chat_id)
        scheduled = previous_daily(sub.digest_time, sub.timezone, now)
        baseline = sub.last_digest_at or store.subscriber_created(sub.chat_id)
        if baseline is not None and scheduled <= baseline:
            continue
        following = next_daily(sub.digest_time, sub.timezone, now)
        if now - scheduled > grace:
            log.info("digest skipped chat=%s scheduled=%s reason=past grace window", sub.chat_id, iso(scheduled))
            with store.conn:
                store.mark_digest(sub.chat_id, scheduled, following)
            continue
        reader = reader_for(store, sub)
        since = sub.last_digest_at or (scheduled - timedelta(days=1))
        messages = digest_messages(store, cfg, reader, since, scheduled, translate)
        with store.conn:  # marked and queued in one transaction
            store.mark_digest(sub.chat_id, scheduled, following)
            for i, text in enumerate(messages):
                store.enqueue(sub.chat_id, "digest", text, dedup_key=f"digest:{sub.chat_id}:{iso(scheduled)}:{i}",
                              disable_preview=True, now=now)
        queued += len(messages)
        log.info("digest queued chat=%s scheduled=%s messages=%d", sub.chat_id, iso(scheduled), len(messages))
    return queued


def topic_names(cfg: Config, lang: str) -> dict[str, str]:
    """{topic id: its name for a reader of ``lang``}."""
    return {t.id: t.name_in(lang) for t in cfg.topics}


def digest_messages(store, cfg: Config, reader: Reader, since: datetime | None, until: datetime,
                    translate=None) -> list[str]:
    """The digest as Telegram HTML messages (empty list: nothing to send)."""
    stories = gather_stories(store, reader, since, until, translate, topic_names=topic_names(cfg, reader.lang))
    if not stories and reader.skip_empty:
        return []
    day = until.astimezone(ZoneInfo(reader.timezone)).date()
    return [m.text for m in render.render_digest(stories, reader.lang, day)]


def subscriber_next_digest(sub: Subscriber, now: datetime) -> datetime | None:
    if sub.mode not in ("digest", "both") or sub.paused:
        return None
    return next_daily(sub.digest_time, sub.timezone, now)

