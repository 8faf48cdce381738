"""The Telegram bot: commands, buttons and settings (python-telegram-bot 22).

This module and :mod:`bot.delivery` are the only ones that import ``telegram``.
Replies to commands are sent directly; alerts and digests go through the
outbox (the ``digest_now`` hook queues them there).

:func:`build_application` wires everything into one ``Application``; the
service adds its own jobs to ``application.job_queue`` and runs it.
``post_init`` (which registers the command menu) is only called by
``run_polling``/``run_webhook``; a caller that drives the application by hand
(``initialize``/``start``/``updater.start_polling``) awaits
:func:`post_init` itself.

Hooks (a dict, every key optional):

- ``post_init(app)``, ``post_stop(app)``, ``post_shutdown(app)``: awaited after ours;
- ``digest_now(chat_id) -> int``: queue the reader's digest now, return the number
  of messages queued (may be a coroutine function);
- ``translate(text, src, dst) -> str | None``: async, used to expand watch words;
- ``watch_preview(chat_id, words, since, now) -> (count, [render.StoryLine])``:
  what the words would have caught (default: :func:`preview_watchwords`).
"""

from __future__ import annotations

import asyncio
import inspect
import io
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from telegram import (BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update)
from telegram.constants import ChatMemberStatus, ChatType, ParseMode
from telegram.error import BadRequest, RetryAfter, TelegramError
from telegram.request import HTTPXRequest
from telegram.ext import (Application, ApplicationBuilder, CallbackQueryHandler, CommandHandler, ContextTypes,
                          MessageHandler, filters)

from . import i18n, render
from .config import Config
from .delivery import retry_after_seconds
from .errors import NewsBotError
from .i18n import t
from .models import LANGS, Subscriber, utcnow
from .store import Store

log = logging.getLogger(__name__)

USER_COMMANDS = ("start", "help", "topics", "subscribe", "unsubscribe", "watch", "unwatch", "watchlist",
                 "digest", "settings", "trend", "stop")
ADMIN_COMMANDS = ("stats", "feeds", "addfeed", "removefeed")
MODES = ("instant", "digest", "both")
WATCH_LIMIT = 50  # watch words per chat
WATCH_MIN, WATCH_MAX = 2, 64  # characters of one watch word
PREVIEW_DAYS = 3
PREVIEW_EXAMPLES = 2
STATS_FAILING = 10  # failing feeds listed by /stats
MAX_CALLBACK = 64  # bytes of callback_data
MAX_REPLY_WAIT = 10.0  # seconds a command reply may wait for a flood-control retry
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)

Hooks = dict[str, Callable[..., Any]]


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def parse_hhmm(text: str) -> str | None:
    """``7:30`` / ``07:30`` -> ``07:30``; None when it is not a time of day."""
    m = _HHMM.match(text.strip())
    return f"{int(m.group(1)):02d}:{m.group(2)}" if m else None


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


def parse_timezone(text: str) -> str | None:
    """An IANA time zone name (case-insensitive), canonicalised; None when unknown."""
    name = _zones().get(text.strip().lower())
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


def parse_quiet(text: str) -> tuple[str | None, str | None] | None:
    """``23:00-07:00`` -> ("23:00", "07:00"); ``off`` -> (None, None); None when malformed."""
    text = text.strip().lower()
    if text in ("off", "none", "no", "-"):
        return None, None
    parts = re.split(r"\s*[-–—]\s*", text)
    if len(parts) != 2:
        return None
    start, end = parse_hhmm(parts[0]), parse_hhmm(parts[1])
    if not start or not end or start == end:
        return None
    return start, end


def split_words(text: str) -> list[str]:
    """Watch words from a command's argument: comma-separated phrases, else one word per space."""
    text = render.clean(text)
    parts = text.split(",") if "," in text else text.split(" ")
    out: list[str] = []
    seen: set[str] = set()
    for part in parts:
        word = part.strip().strip("\"'«»“”")
        if word and word.casefold() not in seen:
            seen.add(word.casefold())
            out.append(word)
    return out


def _command_args(update: Update) -> str:
    """Everything after the command word (newlines kept as spaces)."""
    text = update.effective_message.text or ""
    parts = text.split(maxsplit=1)
    return parts[1].strip() if len(parts) > 1 else ""


def _expansions_text(expansions: Any, word: str) -> str:
    """``ru: забастовка · kk: ереуіл`` from ``{lang: [terms]}`` (plain text)."""
    if not expansions:
        return ""
    if isinstance(expansions, dict):
        chunks = []
        for lang in sorted(expansions):
            terms = [str(x) for x in (expansions[lang] or []) if str(x).casefold() != word.casefold()]
            if terms:
                chunks.append(f"{lang}: " + ", ".join(dict.fromkeys(terms)))
        return " · ".join(chunks)
    return ", ".join(str(x) for x in expansions if str(x).casefold() != word.casefold())


@dataclass
class _Chat:
    """Who wrote and where: the parts of an update the handlers need."""

    chat_id: int
    chat_type: str
    title: str | None
    user_id: int | None


class NewsBot:
    """The command and button handlers over one store and config."""

    def __init__(self, cfg: Config, store: Store, hooks: Hooks | None = None,
                 clock: Callable[[], datetime] = utcnow):
        self.cfg = cfg
        self.store = store
        self.hooks = dict(hooks or {})
        self.clock = clock
        self.topics = {topic.id: topic for topic in cfg.topics}

    # -- who may do what ---------------------------------------------------------

    def lang_of(self, chat_id: int) -> str:
        sub = self.store.subscriber(chat_id)
        return sub.lang if sub else i18n.lang_or_default(self.cfg.translation.target)

    def is_allowed(self, chat_id: int) -> bool:
        allowed = self.cfg.telegram.allowed_chats
        return not allowed or chat_id in allowed or chat_id in self.cfg.telegram.admins

    def is_bot_admin(self, update: Update) -> bool:
        admins = self.cfg.telegram.admins
        chat = update.effective_chat
        user = update.effective_user
        return bool((chat and chat.id in admins) or (user and user.id in admins))

    async def can_change(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
        """In a private chat: yes. In a group: only the group's admins (asked with getChatMember)."""
        chat = update.effective_chat
        if chat is None:
            return False
        if chat.type == ChatType.PRIVATE:
            return True
        if chat.type == ChatType.CHANNEL:
            return False
        message = update.effective_message
        if message is not None and message.sender_chat is not None and message.sender_chat.id == chat.id:
            return True  # an anonymous group admin writes as the group itself
        user = update.effective_user
        if user is None:
            return False
        try:
            member = await context.bot.get_chat_member(chat.id, user.id)
        except TelegramError as exc:
            log.warning("getChatMember failed chat=%s user=%s error=%s", chat.id, user.id, exc)
            return False
        return member.status in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)

    def ensure(self, chat: _Chat) -> tuple[Subscriber, bool]:
        """The chat's subscriber, created with the config's defaults when new."""
        return self.store.ensure_subscriber(
            chat.chat_id, chat_type=chat.chat_type, title=chat.title,
            lang=i18n.lang_or_default(self.cfg.translation.target), digest_time=self.cfg.digest.time,
            timezone=self.cfg.digest.timezone, mode="both", now=self.clock(),
        )

    @staticmethod
    def chat_of(update: Update) -> _Chat:
        chat = update.effective_chat
        user = update.effective_user
        title = chat.title or chat.username or chat.first_name
        return _Chat(chat.id, chat.type, title, user.id if user else None)

    # -- replies -------------------------------------------------------------------

    async def reply(self, update: Update, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
        """Answer a command in its chat (HTML, no link previews), waiting out one flood-control pause."""
        chat_id = update.effective_chat.id
        for attempt in (1, 2):
            try:
                await update.get_bot().send_message(chat_id, text, parse_mode=ParseMode.HTML,
                                                    reply_markup=markup, link_preview_options=_NO_PREVIEW)
                return
            except RetryAfter as exc:
                wait = retry_after_seconds(exc)
                if attempt == 2 or wait > MAX_REPLY_WAIT:
                    raise
                log.info("reply waits for flood control chat=%s seconds=%.1f", chat_id, wait)
                await asyncio.sleep(wait)

    async def reply_long(self, update: Update, lines: list[str]) -> None:
        for text in render.split_text(lines):
            await self.reply(update, text)

    async def refuse_if_cannot_change(self, update: Update, context, lang: str) -> bool:
        """Reply and return True when this user may not change this chat's settings."""
        if not self.is_allowed(update.effective_chat.id):
            await self.reply(update, t(lang, "not_allowed"))
            return True
        if not await self.can_change(update, context):
            await self.reply(update, t(lang, "admins_only_group"))
            return True
        return False

    # -- keyboards -----------------------------------------------------------------

    def topics_keyboard(self, chat_id: int, screen: str, lang: str) -> InlineKeyboardMarkup | None:
        followed = set(self.store.subscribed_topics(chat_id))
        rows = []
        for topic in self.cfg.topics:
            on = topic.id in followed
            data = f"t|{screen}|{'-' if on else '+'}|{topic.id}"
            if len(data.encode("utf-8")) > MAX_CALLBACK:
                log.warning("topic id too long for a button topic=%s", topic.id)
                continue
            label = i18n.t_plain(lang, "btn_on" if on else "btn_off", name=topic.name_in(lang))
            rows.append([InlineKeyboardButton(label, callback_data=data)])
        return InlineKeyboardMarkup(rows) if rows else None

    @staticmethod
    def settings_keyboard(sub: Subscriber) -> InlineKeyboardMarkup:
        lang = sub.lang

        def mark(label: str, on: bool) -> str:
            return ("• " + label + " •") if on else label

        langs = [InlineKeyboardButton(mark(code.upper(), sub.lang == code), callback_data=f"s|lang|{code}")
                 for code in LANGS]
        modes = [InlineKeyboardButton(mark(i18n.t_plain(lang, f"btn_mode_{m}"), sub.mode == m),
                                      callback_data=f"s|mode|{m}") for m in MODES]
        empty = "send" if sub.skip_empty_digest else "skip"
        toggle = [InlineKeyboardButton(i18n.t_plain(lang, f"btn_empty_{empty}"),
                                       callback_data=f"s|empty|{empty}")]
        return InlineKeyboardMarkup([langs, modes, toggle])

    def settings_text(self, sub: Subscriber) -> str:
        lang = sub.lang
        quiet = (f"{sub.quiet_start}–{sub.quiet_end}" if sub.quiet_start and sub.quiet_end
                 else i18n.t_plain(lang, "quiet_off"))
        return (t(lang, "settings", time=sub.digest_time, tz=sub.timezone, lang=i18n.LANG_NAMES[lang],
                  mode=i18n.t_plain(lang, f"mode_{sub.mode}"), quiet=quiet,
                  empty=i18n.t_plain(lang, "empty_skip" if sub.skip_empty_digest else "empty_send"))
                + "\n\n" + i18n.settings_howto(lang))

    def topic_ids_text(self) -> str:
        return ", ".join(self.topics) or "—"

    def find_topic(self, text: str):
        text = render.clean(text).casefold()
        for topic in self.cfg.topics:
            names = [topic.name, *(name for _lang, name in topic.names)]
            if text == topic.id.casefold() or text in {render.clean(n).casefold() for n in names}:
                return topic
        return None

    # -- commands --------------------------------------------------------------------

    async def cmd_start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Welcome, what the bot does, and the topics as toggle buttons."""
        chat = self.chat_of(update)
        lang = self.lang_of(chat.chat_id)
        if not self.is_allowed(chat.chat_id):
            await self.reply(update, t(lang, "not_allowed"))
            return
        if await self.can_change(update, context):
            sub, created = self.ensure(chat)
            if sub.paused:  # they came back (unblocked the bot): deliver again
                self.store.update_subscriber(chat.chat_id, paused=None)
            if created:
                log.info("subscriber created chat=%s type=%s", chat.chat_id, chat.chat_type)
            lang = sub.lang
        text = t(lang, "welcome")
        markup = self.topics_keyboard(chat.chat_id, "w", lang)
        if markup is None:
            text += "\n\n" + t(lang, "topics_none")
        await self.reply(update, text, markup)

    async def cmd_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The commands, with the admin ones for admins."""
        lang = self.lang_of(update.effective_chat.id)
        text = t(lang, "help")
        if self.is_bot_admin(update):
            text += t(lang, "help_admin")
        await self.reply(update, text)

    async def cmd_topics(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The topics with follow/unfollow buttons."""
        chat_id = update.effective_chat.id
        lang = self.lang_of(chat_id)
        markup = self.topics_keyboard(chat_id, "t", lang)
        if markup is None:
            await self.reply(update, t(lang, "topics_none"))
            return
        await self.reply(update, t(lang, "topics_header"), markup)

    async def _topic_command(self, update: Update, context, follow: bool) -> None:
        chat = self.chat_of(update)
        lang = self.lang_of(chat.chat_id)
        arg = _command_args(update)
        if not arg:
            key = "usage_subscribe" if follow else "usage_unsubscribe"
            await self.reply(update, t(lang, key, ids=self.topic_ids_text()))
            return
        topic = self.find_topic(arg)
        if topic is None:
            await self.reply(update, t(lang, "unknown_topic", topic=render.truncate(render.clean(arg), 64),
                                       ids=self.topic_ids_text()))
            return
        if await self.refuse_if_cannot_change(update, context, lang):
            return
        self.ensure(chat)
        if follow:
            changed = self.store.subscribe(chat.chat_id, topic.id)
            key = "subscribed" if changed else "already_subscribed"
        else:
            changed = self.store.unsubscribe(chat.chat_id, topic.id)
            key = "unsubscribed" if changed else "not_subscribed"
        log.info("topic %s chat=%s topic=%s changed=%s", "follow" if follow else "unfollow", chat.chat_id,
                 topic.id, changed)
        await self.reply(update, t(lang, key, topic=topic.name_in(lang)))

    async def cmd_subscribe(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/subscribe <topic>: follow a topic."""
        await self._topic_command(update, context, True)

    async def cmd_unsubscribe(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/unsubscribe <topic>: stop following a topic."""
        await self._topic_command(update, context, False)

    async def cmd_watch(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/watch <words>: watch words (with their forms in other languages) and preview them."""
        chat = self.chat_of(update)
        lang = self.lang_of(chat.chat_id)
        words = split_words(_command_args(update))
        if not words:
            await self.reply(update, t(lang, "usage_watch"))
            return
        if await self.refuse_if_cannot_change(update, context, lang):
            return
        self.ensure(chat)
        lines: list[str] = []
        existing = {w.word.casefold(): w for w in self.store.watchwords(chat.chat_id)}
        good, known = [], []
        for word in words:
            if not WATCH_MIN <= len(word) <= WATCH_MAX:
                lines.append(t(lang, "watch_bad", word=render.truncate(word, 40)))
            elif word.casefold() in existing:
                known.append(existing[word.casefold()].word)
            else:
                good.append(word)
        room = WATCH_LIMIT - len(existing)
        if len(good) > room:
            lines.append(t(lang, "watch_limit", n=WATCH_LIMIT))
            good = good[:max(0, room)]
        added = []
        for word in good:
            try:  # bot.match or the store refuses it (no letters, only operators...)
                word_lang, expansions = await self.expand(word)
                self.store.add_watchword(chat.chat_id, word, lang=word_lang, expansions=expansions,
                                         now=self.clock())
            except ValueError as exc:
                log.info("watchword refused chat=%s word=%r reason=%s", chat.chat_id, word, exc)
                lines.append(t(lang, "watch_bad", word=render.truncate(word, 40)))
                continue
            added.append((word, expansions))
            log.info("watchword added chat=%s word=%r lang=%s", chat.chat_id, word, word_lang)
        if known:
            lines.append(t(lang, "watch_known", words=", ".join(known)))
        if added:
            self.reload_matcher()
            lines.append(t(lang, "watch_added"))
            for word, expansions in added:
                lines.append(self.watch_line(word, expansions))
            lines.extend(await self.preview_lines(chat.chat_id, [w for w, _ in added], lang))
        await self.reply_long(update, lines)

    async def expand(self, word: str) -> tuple[str | None, dict]:
        """The word's language and its forms in the others (``{lang: [terms]}``), via bot.match."""
        from .match import aexpand_watchword

        try:
            lang, expansions = await aexpand_watchword(word, translate=self.hooks.get("translate"))
        except ValueError:
            raise
        except Exception:  # expansion is a nicety: the word itself is still watched
            log.warning("watchword expansion failed word=%r", word, exc_info=True)
            return None, {}
        return lang, expansions

    def reload_matcher(self) -> None:
        hook = self.hooks.get("watchwords_changed")
        if hook is not None:
            try:
                hook()
            except Exception:
                log.warning("watchwords_changed hook failed", exc_info=True)

    @staticmethod
    def watch_line(word: str, expansions: Any) -> str:
        more = _expansions_text(expansions, word)
        line = "• <b>" + i18n.escape(word) + "</b>"
        return line + (" → " + i18n.escape(render.truncate(more, 300)) if more else "")

    async def preview_lines(self, chat_id: int, words: list[str], lang: str) -> list[str]:
        """What these watch words would have caught in the last three days."""
        now = self.clock()
        hook = self.hooks.get("watch_preview") or (lambda c, w, s, n: preview_watchwords(self.store, self.cfg,
                                                                                         c, w, s, n))
        try:
            since = now - timedelta(days=PREVIEW_DAYS)
            count, examples = await _maybe_await(hook(chat_id, words, since, now))
        except Exception:
            log.warning("watch preview failed chat=%s", chat_id, exc_info=True)
            return [t(lang, "watch_preview_unavailable")]
        if not count:
            return [t(lang, "watch_preview_none")]
        lines = [t(lang, "watch_preview", n=count, stories=i18n.plural(lang, count, "story")),
                 t(lang, "watch_preview_examples")]
        lines.extend(render.story_block(story, lang) for story in examples[:PREVIEW_EXAMPLES])
        return lines

    async def cmd_unwatch(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/unwatch <words>: stop watching words."""
        chat = self.chat_of(update)
        lang = self.lang_of(chat.chat_id)
        words = split_words(_command_args(update))
        if not words:
            await self.reply(update, t(lang, "usage_unwatch"))
            return
        if await self.refuse_if_cannot_change(update, context, lang):
            return
        existing = {w.word.casefold(): w.word for w in self.store.watchwords(chat.chat_id)}
        removed, missing = [], []
        for word in words:
            stored = existing.get(word.casefold())
            if stored is not None and self.store.remove_watchword(chat.chat_id, stored):
                removed.append(stored)
            else:
                missing.append(word)
        lines = []
        if removed:
            self.reload_matcher()
            lines.append(t(lang, "unwatch_removed", words=", ".join(removed)))
        if missing:
            lines.append(t(lang, "unwatch_missing", words=render.truncate(", ".join(missing), 200)))
        await self.reply(update, "\n".join(lines))

    async def cmd_watchlist(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Each watch word with its expansions in the other languages."""
        chat_id = update.effective_chat.id
        lang = self.lang_of(chat_id)
        words = self.store.watchwords(chat_id)
        if not words:
            await self.reply(update, t(lang, "watchlist_empty"))
            return
        await self.reply_long(update, [t(lang, "watchlist_header")]
                              + [self.watch_line(w.word, w.expansions) for w in words])

    async def cmd_digest(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Queue my digest now (it arrives through the outbox)."""
        chat = self.chat_of(update)
        lang = self.lang_of(chat.chat_id)
        if self.store.subscriber(chat.chat_id) is None:
            await self.reply(update, t(lang, "stop_nothing"))
            return
        hook = self.hooks.get("digest_now")
        if hook is None:
            await self.reply(update, t(lang, "digest_unavailable"))
            return
        # said first: the outbox often delivers the digest before a reply sent after queueing it
        await self.reply(update, t(lang, "digest_queued"))
        try:
            queued = await _maybe_await(hook(chat.chat_id))
        except Exception:
            log.exception("digest now failed chat=%s", chat.chat_id)
            queued = 0
        if not queued:
            await self.reply(update, t(lang, "digest_unavailable"))

    async def cmd_trend(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A PNG chart of matched stories per topic per day, by language: /trend [topic] [days]."""
        from .trend import local_day, render_trend

        chat = self.chat_of(update)
        lang = self.lang_of(chat.chat_id)
        topic, days = None, 14
        for arg in _command_args(update).split():
            if arg.isdigit():
                days = int(arg)
            elif self.cfg.topic(arg.lower()) is not None:
                topic = arg.lower()
            else:
                await self.reply(update, t(lang, "trend_usage"))
                return
        if not 1 <= days <= 90:
            await self.reply(update, t(lang, "trend_usage"))
            return
        sub = self.store.subscriber(chat.chat_id)
        tz = sub.timezone if sub else self.cfg.digest.timezone
        offset, today = local_day(tz, self.clock())
        rows = self.store.trend_rows(days, topic=topic, now=self.clock(), utc_offset_minutes=offset)
        names = {x.id: x.name_in(lang) for x in self.cfg.topics if topic is None or x.id == topic}
        buffer = io.BytesIO()
        # matplotlib is slow and blocking: off the event loop (the store was read above, on it)
        await asyncio.to_thread(render_trend, rows, names, days, buffer, end=today)
        await update.get_bot().send_photo(chat.chat_id, photo=buffer.getvalue(),
                                          caption=i18n.t_plain(lang, "trend_caption", days=days))

    async def cmd_settings(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Show the settings, or change one: time, tz, lang, mode, quiet, empty."""
        chat = self.chat_of(update)
        lang = self.lang_of(chat.chat_id)
        args = _command_args(update).split(maxsplit=1)
        if not args:
            sub = self.store.subscriber(chat.chat_id)
            if sub is None:
                if not self.is_allowed(chat.chat_id):
                    await self.reply(update, t(lang, "not_allowed"))
                    return
                sub = self._preview_subscriber(chat.chat_id)
            await self.reply(update, self.settings_text(sub), self.settings_keyboard(sub))
            return
        key = args[0].lower()
        value = args[1].strip() if len(args) > 1 else ""
        change, error = self.parse_setting(key, value)
        if error == "usage_settings":
            await self.reply(update, i18n.settings_usage(lang))
            return
        if error:
            await self.reply(update, t(lang, error, value=render.truncate(render.clean(value), 64))
                             + "\n\n" + i18n.settings_usage(lang))
            return
        if await self.refuse_if_cannot_change(update, context, lang):
            return
        self.ensure(chat)
        sub = self.store.update_subscriber(chat.chat_id, **change)
        log.info("settings changed chat=%s %s", chat.chat_id, " ".join(f"{k}={v}" for k, v in change.items()))
        await self.reply(update, t(sub.lang, "saved") + "\n\n" + self.settings_text(sub),
                         self.settings_keyboard(sub))

    def _preview_subscriber(self, chat_id: int) -> Subscriber:
        return Subscriber(chat_id=chat_id, lang=i18n.lang_or_default(self.cfg.translation.target),
                          digest_time=self.cfg.digest.time, timezone=self.cfg.digest.timezone)

    @staticmethod
    def parse_setting(key: str, value: str) -> tuple[dict, str | None]:
        """A /settings argument as store fields, or (``{}``, the i18n key of the problem)."""
        if key == "time":
            hhmm = parse_hhmm(value)
            return ({"digest_time": hhmm}, None) if hhmm else ({}, "bad_time")
        if key in ("tz", "timezone", "zone"):
            tz = parse_timezone(value) if value else None
            return ({"timezone": tz}, None) if tz else ({}, "bad_tz")
        if key in ("lang", "language"):
            code = value.lower()
            return ({"lang": code}, None) if code in LANGS else ({}, "bad_lang")
        if key == "mode":
            mode = value.lower()
            return ({"mode": mode}, None) if mode in MODES else ({}, "bad_mode")
        if key == "quiet":
            quiet = parse_quiet(value) if value else None
            if quiet is None:
                return {}, "bad_quiet"
            return {"quiet_start": quiet[0], "quiet_end": quiet[1]}, None
        if key in ("empty", "skipempty"):
            choice = value.lower()
            if choice in ("skip", "on", "yes"):
                return {"skip_empty_digest": True}, None
            if choice in ("send", "off", "no"):
                return {"skip_empty_digest": False}, None
            return {}, "bad_empty"
        return {}, "usage_settings"

    async def cmd_stop(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Unsubscribe and forget everything kept for this chat."""
        chat_id = update.effective_chat.id
        lang = self.lang_of(chat_id)
        if not await self.can_change(update, context):
            await self.reply(update, t(lang, "admins_only_group"))
            return
        forgotten = self.store.forget_subscriber(chat_id)
        if forgotten:
            self.reload_matcher()
            log.info("subscriber forgotten chat=%s", chat_id)
        await self.reply(update, t(lang, "stop_done" if forgotten else "stop_nothing"))

    # -- buttons -----------------------------------------------------------------------

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A topic or settings button: check, change, answer, and redraw the message."""
        query = update.callback_query
        message = query.message
        if message is None or not hasattr(message, "chat") or message.chat is None or not query.data:
            await query.answer(i18n.t_plain(self.cfg.translation.target, "cb_unknown"))
            return
        chat_id = message.chat.id
        lang = self.lang_of(chat_id)
        parts = query.data.split("|")
        if not self.is_allowed(chat_id):
            await query.answer(i18n.t_plain(lang, "not_allowed"), show_alert=True)
            return
        if not await self.can_change(update, context):
            await query.answer(i18n.t_plain(lang, "admins_only_group"), show_alert=True)
            return
        chat = _Chat(chat_id, message.chat.type, message.chat.title or message.chat.username
                     or message.chat.first_name, query.from_user.id if query.from_user else None)
        if len(parts) == 4 and parts[0] == "t" and parts[2] in "+-" and parts[3] in self.topics:
            await self._topic_button(query, chat, parts[1], parts[2] == "+", self.topics[parts[3]])
        elif len(parts) == 3 and parts[0] == "s":
            change, error = self.parse_setting(parts[1], parts[2])
            if error:
                await query.answer(i18n.t_plain(lang, "cb_unknown"))
                return
            self.ensure(chat)
            sub = self.store.update_subscriber(chat_id, **change)
            await query.answer(i18n.t_plain(sub.lang, "saved"))
            await self._redraw(query, self.settings_text(sub), self.settings_keyboard(sub))
        else:
            await query.answer(i18n.t_plain(lang, "cb_unknown"))

    async def _topic_button(self, query, chat: _Chat, screen: str, follow: bool, topic) -> None:
        sub, _ = self.ensure(chat)
        lang = sub.lang
        if follow:
            self.store.subscribe(chat.chat_id, topic.id)
        else:
            self.store.unsubscribe(chat.chat_id, topic.id)
        log.info("topic %s chat=%s topic=%s via=button", "follow" if follow else "unfollow", chat.chat_id,
                 topic.id)
        key = "cb_subscribed" if follow else "cb_unsubscribed"
        await query.answer(i18n.t_plain(lang, key, topic=topic.name_in(lang)))
        text = t(lang, "welcome") if screen == "w" else t(lang, "topics_header")
        await self._redraw(query, text, self.topics_keyboard(chat.chat_id, screen, lang))

    @staticmethod
    async def _redraw(query, text: str, markup: InlineKeyboardMarkup | None) -> None:
        try:
            await query.edit_message_text(text, parse_mode=ParseMode.HTML, reply_markup=markup,
                                          link_preview_options=_NO_PREVIEW)
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():  # a second tap on the same state is fine
                raise

    # -- admin -------------------------------------------------------------------------

    async def _refuse_non_admin(self, update: Update) -> bool:
        if self.is_bot_admin(update):
            return False
        await self.reply(update, t(self.lang_of(update.effective_chat.id), "admin_only"))
        return True

    async def cmd_stats(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Feeds, items, failing feeds, subscribers, the outbox queue."""
        if await self._refuse_non_admin(update):
            return
        lang = self.lang_of(update.effective_chat.id)
        feeds = self.store.feeds(include_retired=True)
        active = [f for f in feeds if not f.retired]
        outbox = self.store.outbox_counts()
        counts = self.store.subscriber_counts()
        failing = sorted((f for f in active if f.failures), key=lambda f: -f.failures)
        lines = [t(
            lang, "stats", feeds=len(active), failing=len(failing),
            retired=len(feeds) - len(active), items=self.store.count("items"),
            stories=self.store.count("stories"),
            subscribers=counts["subscribers"], paused=counts["paused"],
            pending=sum(v for k, v in outbox.items() if k in ("pending", "sending", "held")),
            failed=outbox.get("failed", 0), sent=outbox.get("sent", 0))]
        for f in failing[:STATS_FAILING]:
            lines.append(f"#{f.id} {i18n.escape(render.truncate(render.clean(f.name), 60))}: "
                         + t(lang, "feed_failing", n=f.failures,
                             error=render.truncate(render.clean(f.last_error or "?"), 120)))
        await self.reply_long(update, lines)

    async def cmd_feeds(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Every feed with its state."""
        if await self._refuse_non_admin(update):
            return
        lang = self.lang_of(update.effective_chat.id)
        feeds = self.store.feeds(include_retired=True)
        if not feeds:
            await self.reply(update, t(lang, "feeds_none"))
            return
        lines = [t(lang, "feeds_header", n=len(feeds))]
        for f in feeds:
            state = ""
            if f.retired:
                state = " — " + t(lang, "feed_retired")
            elif f.failures:
                state = " — " + t(lang, "feed_failing", n=f.failures,
                                  error=render.truncate(render.clean(f.last_error or "?"), 120))
            lines.append(f"#{f.id} <b>{i18n.escape(render.truncate(render.clean(f.name), 60))}</b> "
                         f"[{f.lang}] {i18n.escape(render.truncate(f.url, 200))}{state}")
        await self.reply_long(update, lines)

    async def cmd_addfeed(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/addfeed <url> <lang> [name]: checked (address, fetch, parse) before it is saved."""
        if await self._refuse_non_admin(update):
            return
        from .feedcheck import check_feed

        lang = self.lang_of(update.effective_chat.id)
        args = _command_args(update).split(maxsplit=2)
        if len(args) < 2 or args[1].lower() not in LANGS:
            await self.reply(update, t(lang, "usage_addfeed"))
            return
        url, feed_lang = args[0], args[1].lower()
        name = render.clean(args[2]) if len(args) > 2 else ""
        if render.safe_url(url) is None:
            await self.reply(update, t(lang, "addfeed_bad_url"))
            return
        existing = self.store.find_feed(url)
        if existing is not None and not existing.retired:
            await self.reply(update, t(lang, "addfeed_exists", id=existing.id))
            return
        check = await check_feed(url, feed_lang, self.cfg.poll,
                                 allow_private=self.cfg.telegram.allow_private_feed_urls)
        if not check.ok:
            log.info("addfeed refused url=%s reason=%s", url, check.message)
            await self.reply(update, t(lang, "addfeed_refused", reason=render.truncate(check.message, 300)))
            return
        feed = self.store.add_feed(check.final_url or url, feed_lang, name or check.title or url,
                                   source="admin", now=self.clock())
        log.info("feed added feed=%s url=%s by=%s", feed.id, feed.url, update.effective_chat.id)
        await self.reply(update, t(lang, "addfeed_ok", id=feed.id, name=feed.name, lang=feed.lang,
                                   n=check.entries, entries=i18n.plural(lang, check.entries, "entry")))

    async def cmd_removefeed(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/removefeed <id|url>: retire a feed (its items stay)."""
        if await self._refuse_non_admin(update):
            return
        lang = self.lang_of(update.effective_chat.id)
        arg = _command_args(update)
        if not arg or " " in arg:
            await self.reply(update, t(lang, "usage_removefeed"))
            return
        feed = self.store.remove_feed(arg.lstrip("#"), now=self.clock())
        if feed is None:
            await self.reply(update, t(lang, "removefeed_unknown", feed=render.truncate(arg, 200)))
            return
        log.info("feed removed feed=%s by=%s", feed.id, update.effective_chat.id)
        await self.reply(update, t(lang, "removefeed_ok", id=feed.id, name=feed.name))

    async def on_other(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A private message that is none of our commands (plain text, a mistyped command):
        say where the commands are. In groups such messages are the members' own talk."""
        chat = update.effective_chat
        if chat is None or chat.type != "private":
            return
        await self.reply(update, t(self.lang_of(chat.id), "unknown_input"))

    async def on_migrate(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A group became a supergroup: its subscription moves to the new chat id."""
        message = update.effective_message
        if message is None or not message.migrate_to_chat_id:
            return
        old, new = message.chat.id, message.migrate_to_chat_id
        moved = self.store.migrate_chat(old, new)
        log.info("chat migrated chat=%s new_chat=%s moved=%s", old, new, moved)

    # -- errors ----------------------------------------------------------------------------

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log every handler error with its traceback; tell the user something failed."""
        chat_id = update.effective_chat.id if isinstance(update, Update) and update.effective_chat else None
        log.error("update failed chat=%s error=%s", chat_id, context.error, exc_info=context.error)
        if not isinstance(update, Update) or chat_id is None:
            return
        try:
            if update.callback_query is not None:
                await update.callback_query.answer(i18n.t_plain(self.lang_of(chat_id), "error"))
            else:
                await update.get_bot().send_message(chat_id, t(self.lang_of(chat_id), "error"),
                                                    parse_mode=ParseMode.HTML)
        except Exception:  # the apology is best effort
            log.debug("could not report the error chat=%s", chat_id, exc_info=True)


# -- the preview of new watch words -------------------------------------------------------


def preview_watchwords(store: Store, cfg: Config, chat_id: int, words: list[str], since: datetime,
                       now: datetime) -> tuple[int, list[render.StoryLine]]:
    """How many stories first seen in (since, now] these watch words match, and the biggest two.

    The chat's stored watch words named in ``words`` are matched (with their
    expansions) against the stored items of the window, in each item's own
    language, exactly as the pipeline would have matched them.
    """
    from .match import Matcher

    wanted = {w.casefold() for w in words}
    watch = [w for w in store.watchwords(chat_id) if w.word.casefold() in wanted]
    if not watch:
        return 0, []
    matcher = Matcher((), watch)
    by_story: dict[int, list[tuple[dict, list]]] = {}
    for row in store.items_between(since, now):
        matches = matcher.match(row["title"], row["summary"], row["lang"])
        if matches:
            key = row["story_id"] if row["story_id"] is not None else -row["id"]
            by_story.setdefault(key, []).append((row, matches))
    sub = store.subscriber(chat_id)
    reader = sub.lang if sub else cfg.translation.target
    names = {w.id: w.word for w in watch}
    ranked = sorted(by_story.values(), key=lambda rows: (len({r["feed_name"] for r, _ in rows}), len(rows)),
                    reverse=True)
    examples = []
    for rows in ranked[:PREVIEW_EXAMPLES]:
        own = [r for r, _ in rows if r["lang"] == reader]
        first = own[0] if own else rows[0][0]
        terms = list(dict.fromkeys(term for _, ms in rows for m in ms for term in m.terms))
        matched_words = list(dict.fromkeys(names[int(m.topic[6:])] for _, ms in rows for m in ms
                                           if m.topic.startswith("watch:") and int(m.topic[6:]) in names))
        examples.append(render.StoryLine(
            headline=first["title"], headline_lang=first["lang"], original_lang=first["lang"],
            url=first["url"],
            sources=list(dict.fromkeys(r["feed_name"] for r, _ in rows)),
            langs=list(dict.fromkeys(r["lang"] for r, _ in rows)), why=terms, watchwords=matched_words))
    return len(by_story), examples


# -- the application --------------------------------------------------------------------------


def command_menu(lang: str, admin: bool = False) -> list[BotCommand]:
    names = USER_COMMANDS + (ADMIN_COMMANDS if admin else ())
    return [BotCommand(name, i18n.t_plain(lang, f"cmd_{name}") if name in USER_COMMANDS else name)
            for name in names]


async def register_commands(bot) -> None:
    """setMyCommands: the default menu (English) and one per reader language."""
    for lang in LANGS:
        try:
            await bot.set_my_commands(command_menu(lang), language_code=None if lang == "en" else lang)
        except TelegramError as exc:  # a missing menu must not stop the bot
            log.warning("setMyCommands failed lang=%s error=%s", lang, exc)


async def post_init(application: Application) -> None:
    """Register the command menu, then run the service's own post_init hook."""
    await register_commands(application.bot)
    hook = application.bot_data.get("newsbot_hooks", {}).get("post_init")
    if hook is not None:
        await hook(application)


def _chained(name: str):
    async def run(application: Application) -> None:
        hook = application.bot_data.get("newsbot_hooks", {}).get(name)
        if hook is not None:
            await hook(application)

    return run


def build_application(cfg: Config, store: Store, hooks: Hooks | None = None, *,
                      clock: Callable[[], datetime] = utcnow, ssl_context=None) -> Application:
    """The bot as a python-telegram-bot ``Application`` (token from TELEGRAM_BOT_TOKEN).

    ``ssl_context``: one shared ``ssl.SSLContext`` for both HTTP clients (PTB
    otherwise loads the CA bundle twice per application; tests share one).
    """
    if not cfg.telegram.token:
        raise NewsBotError("telegram: TELEGRAM_BOT_TOKEN is not set "
                           "(the token is read from the environment only)")
    hooks = dict(hooks or {})
    builder = (
        ApplicationBuilder()
        .token(cfg.telegram.token)
        .base_url(cfg.telegram.base_url)
        .post_init(post_init)
        .post_stop(_chained("post_stop"))
        .post_shutdown(_chained("post_shutdown"))
    )
    if ssl_context is not None:
        builder = builder.request(HTTPXRequest(httpx_kwargs={"verify": ssl_context})).get_updates_request(
            HTTPXRequest(connection_pool_size=1, httpx_kwargs={"verify": ssl_context}))
    application = builder.build()
    bot = NewsBot(cfg, store, hooks, clock)
    application.bot_data["newsbot"] = bot
    application.bot_data["newsbot_hooks"] = hooks
    only_new = filters.UpdateType.MESSAGE  # edited messages do not re-run commands
    for name in USER_COMMANDS + ADMIN_COMMANDS:
        application.add_handler(CommandHandler(name, getattr(bot, f"cmd_{name}"), filters=only_new))
    application.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, bot.on_migrate))
    # after the commands: only what none of them took (plain text, a command we do not have)
    application.add_handler(MessageHandler(only_new & filters.ChatType.PRIVATE & (filters.TEXT | filters.COMMAND),
                                           bot.on_other))
    application.add_handler(CallbackQueryHandler(bot.on_button, pattern=r"^[ts]\|"))
    application.add_handler(CallbackQueryHandler(bot.on_button))  # stale or unknown buttons get an answer
    application.add_error_handler(bot.on_error)
    return application
