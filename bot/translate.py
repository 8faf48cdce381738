"""Translate what a reader will see, once, cached, without ever holding up a cycle.

deep-translator is imported here and nowhere else. It is synchronous and sets
no timeout on its HTTP requests, so every provider request runs in a daemon
worker thread and is awaited under a deadline; the store (SQLite) is touched
only on the event-loop thread.

Behaviour, in the order a text meets it:

* same source and target language, or nothing to translate -> the text itself;
* a pair the provider cannot translate (reported by :meth:`Translator.startup_warnings`)
  -> ``None`` at once, no request, nothing queued;
* the cache (provider, src, dst, sha1 of the text) -> no request;
* otherwise a request, split on sentence boundaries when the text is over the
  provider's size limit, retried with backoff on transient errors, behind a
  circuit breaker that stops calling a provider that keeps failing and sends
  one trial request after a pause (the pause doubles while trials fail);
* when no translation can be had within the call's budget, the caller gets
  ``None`` (the original text is shown, marked with its language) and the text
  is queued in ``translation_pending``; :meth:`Translator.fill_pending` (run each
  cycle and before digests) fills the gaps later. An answer that arrives after
  its deadline is still cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import logging
import random
import re
import sys
import threading
import time
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Callable

from .config import TranslationConfig
from .models import LANGS, utcnow
from .store import Store

log = logging.getLogger(__name__)

GOOGLE_DEFAULT_URL = "https://translate.google.com/m"
KEYED = ("deepl", "microsoft", "yandex")

# Characters per request. deep-translator's own checks: Google < 5000, MyMemory
# < 500. Google, LibreTranslate and DeepL get the text in the URL query, where
# Cyrillic costs six bytes a character, so we stay well below those.
SIZE_LIMITS = {
    "google": 1800,
    "libre": 1800,
    "mymemory": 450,
    "deepl": 1800,
    "microsoft": 5000,
    "yandex": 5000,
}

_LANG_NAMES = {"en": "english", "ru": "russian", "kk": "kazakh"}
_PENDING_BACKOFF = timedelta(minutes=2)  # first wait before a queued text is tried again
_PENDING_BACKOFF_MAX = timedelta(hours=6)
_PENDING_MAX_ATTEMPTS = 12  # then the text is given up (the row stays, next_attempt_at NULL)
_BREAKER_RESET_MAX = 3600.0
_HAS_WORD = re.compile(r"\w")
# A sentence ends at . ! ? … (optionally followed by closing quotes/brackets) and
# whitespace, or at a line break.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'»”’)\]]*\s+|\n\s*")
_SPACE = re.compile(r"\s")


def _dt_version() -> str:
    try:
        return importlib.metadata.version("deep-translator")
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def split_text(text: str, limit: int) -> list[tuple[str, str]]:
    """Cut ``text`` into pieces of at most ``limit`` characters.

    Cuts fall at sentence ends where possible, else at a space, else anywhere.
    Returns ``(piece, separator)`` pairs: the separator (``" "``, ``"\\n"`` or
    ``""``) joins the piece's translation to the next one.
    """
    if limit < 1:
        raise ValueError(f"translate: size limit must be at least 1, not {limit}")
    text = text.strip()
    if len(text) <= limit:
        return [(text, "")]
    pieces: list[tuple[str, str]] = []
    start, n = 0, len(text)
    while start < n:
        if n - start <= limit:
            pieces.append((text[start:], ""))
            break
        window_end = start + limit
        cut = None
        for m in _SENTENCE_END.finditer(text, start, min(n, window_end + 1)):
            end = _piece_end(text, m)
            if end > window_end:
                break
            if end > start:
                cut = end
        if cut is None:
            spaces = [m.start() for m in _SPACE.finditer(text, start + 1, window_end + 1)]
            cut = spaces[-1] if spaces else window_end
        gap_end = cut
        while gap_end < n and text[gap_end].isspace():
            gap_end += 1
        gap = text[cut:gap_end]
        pieces.append((text[start:cut].strip(), "\n" if "\n" in gap else " " if gap else ""))
        start = gap_end
    pieces[-1] = (pieces[-1][0], "")
    return pieces


def _piece_end(text: str, m: re.Match) -> int:
    """Where a piece ends at a sentence-end match: after the punctuation, before the space."""
    end = m.end()
    while end > m.start() and text[end - 1].isspace():
        end -= 1
    return end


# -- errors -----------------------------------------------------------------


class _Failed(Exception):
    """A provider request failed; ``kind`` says what to do about it.

    transient: retry with backoff; rate: the provider asks us to slow down
    (open the circuit now); provider: the provider refuses us (key, quota) -
    open the circuit for long; text: this text cannot be translated (no retry,
    says nothing about the provider).
    """

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class _Unavailable(Exception):
    """No request was made: the circuit is open, the budget is spent, or workers are busy."""


_SERVER_KINDS = {
    "ERR_TOO_MANY_REQUESTS": "rate",
    "ERR_KEY_INVALID": "provider",
    "ERR_KEY_BLOCKED": "provider",
    "ERR_DAILY_REQ_LIMIT_EXCEEDED": "provider",
    "ERR_DAILY_CHAR_LIMIT_EXCEEDED": "provider",
    "ERR_BAD_REQUEST": "text",
    "ERR_TEXT_TOO_LONG": "text",
    "ERR_UNPROCESSABLE_TEXT": "text",
    "ERR_LANG_NOT_SUPPORTED": "text",
}


def classify(exc: BaseException) -> _Failed:
    """Turn whatever deep-translator (or requests under it) raised into a _Failed."""
    if isinstance(exc, _Failed):
        return exc
    name = type(exc).__name__
    # deep-translator is imported with the first translator built; before that nothing it raises can come
    dt_errors = sys.modules.get("deep_translator.exceptions")
    if dt_errors is not None:
        failed = _classify_provider_error(exc, name, dt_errors)
        if failed is not None:
            return failed
    if isinstance(exc, OSError):  # requests' errors are OSErrors: connection refused, reset, DNS
        return _Failed("transient", f"translate: network error ({name})")
    # TranslationNotFound (a page without the expected element), malformed JSON,
    # and anything unexpected: the provider did not give us a translation.
    return _Failed("transient", f"translate: no translation ({name}: {str(exc)[:200]})")


def _classify_provider_error(exc: BaseException, name: str, dt_errors) -> _Failed | None:
    """:func:`classify` for deep-translator's own exceptions; None for any other."""
    if isinstance(exc, dt_errors.TooManyRequests):
        return _Failed("rate", "translate: too many requests (429)")
    if isinstance(exc, dt_errors.ServerException):
        code = str(exc.args[0]) if exc.args else ""
        return _Failed(_SERVER_KINDS.get(code, "transient"), f"translate: server error {code}")
    if isinstance(exc, (dt_errors.AuthorizationException, dt_errors.ApiKeyException)):
        return _Failed("provider", f"translate: not authorised ({name})")
    if isinstance(exc, (dt_errors.NotValidLength, dt_errors.NotValidPayload,
                        dt_errors.LanguageNotSupportedException, dt_errors.InvalidSourceOrTargetLanguage)):
        return _Failed("text", f"translate: rejected ({name})")
    if isinstance(exc, dt_errors.RequestError):
        return _Failed("transient", "translate: request failed (HTTP error)")
    if isinstance(exc, dt_errors.MicrosoftAPIerror):
        message = exc.api_message
        kind = "rate" if "429" in message else "provider" if ("401" in message or "403" in message) \
            else "transient"
        return _Failed(kind, f"translate: microsoft error {message[:200]}")
    return None


# -- circuit breaker -------------------------------------------------------


class CircuitBreaker:
    """closed -> (``threshold`` consecutive failures) -> open -> (pause) -> half-open.

    Half-open lets exactly one trial request through: success closes the
    circuit, failure opens it again with a doubled pause (capped).
    """

    def __init__(self, threshold: int, reset_seconds: float, clock: Callable[[], float] = time.monotonic,
                 max_reset_seconds: float = _BREAKER_RESET_MAX):
        self.threshold = threshold
        self.base_reset = reset_seconds
        self.max_reset = max(max_reset_seconds, reset_seconds)
        self.clock = clock
        self.state = "closed"
        self.failures = 0
        self.reset_seconds = reset_seconds
        self.open_until = 0.0
        self.trial_in_flight = False
        self.opened = 0  # times the circuit opened (for stats)

    def allow(self) -> bool:
        """May a request go out now? (In half-open, True once: the trial.)"""
        if self.state == "closed":
            return True
        if self.state == "open":
            if self.clock() < self.open_until:
                return False
            self.state = "half-open"
            self.trial_in_flight = False
            log.info("translation circuit half-open: one trial request")
        if self.trial_in_flight:
            return False
        self.trial_in_flight = True
        return True

    def blocked(self) -> bool:
        """Open and still pausing (asks nothing, changes nothing)."""
        return self.state == "open" and self.clock() < self.open_until

    def success(self) -> None:
        if self.state != "closed":
            log.info("translation circuit closed: provider answers again")
        self.state = "closed"
        self.failures = 0
        self.reset_seconds = self.base_reset
        self.trial_in_flight = False

    def neutral(self) -> None:
        """The request said nothing about the provider's health (a rejected text)."""
        self.trial_in_flight = False

    def failure(self, kind: str = "transient") -> None:
        self.failures += 1
        if self.state == "half-open":
            self.reset_seconds = min(self.reset_seconds * 2, self.max_reset)
            self._open(kind)
        elif self.state == "closed" and (self.failures >= self.threshold or kind in ("rate", "provider")):
            if kind == "provider":
                self.reset_seconds = self.max_reset
            self._open(kind)

    def _open(self, kind: str) -> None:
        self.state = "open"
        self.trial_in_flight = False
        self.open_until = self.clock() + self.reset_seconds
        self.opened += 1
        log.warning("translation circuit open: failures=%d reason=%s retry_in=%.0fs",
                    self.failures, kind, self.reset_seconds)


# -- the translator --------------------------------------------------------


@dataclass
class TranslatorStats:
    requests: int = 0  # provider requests made (pieces and retries included)
    cache_hits: int = 0  # texts answered from the cache
    cache_misses: int = 0  # distinct texts looked up and not found
    translated: int = 0  # texts translated by a request
    failures: int = 0  # failed requests
    timeouts: int = 0  # requests that missed their deadline
    skipped: int = 0  # texts not tried: circuit open, budget spent, workers busy, no key
    unsupported: int = 0  # texts in a language pair the provider cannot do
    queued: int = 0  # texts put in the pending queue
    late: int = 0  # answers that arrived after their deadline and were cached
    filled: int = 0  # pending texts filled by fill_pending

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class _InstancePool:
    """deep-translator objects keep per-request state, so each thread takes its own."""

    def __init__(self, factory: Callable[[str, str], object]):
        self.factory = factory
        self.free: dict[tuple[str, str], list[object]] = {}
        self.lock = threading.Lock()

    def take(self, src: str, dst: str):
        with self.lock:
            stack = self.free.get((src, dst))
            if stack:
                return stack.pop()
        return self.factory(src, dst)  # may do network (Microsoft lists its languages)

    def give(self, src: str, dst: str, obj) -> None:
        with self.lock:
            self.free.setdefault((src, dst), []).append(obj)


class Translator:
    """Translation for readers: cached, bounded in time, never raising.

    Use on one event loop. ``clock`` (monotonic seconds) drives the circuit
    breaker, ``now`` the pending queue's schedule; tests pass their own.
    """

    def __init__(self, cfg: TranslationConfig, store: Store, *,
                 clock: Callable[[], float] = time.monotonic, now: Callable[[], datetime] = utcnow,
                 backoff_seconds: float = 0.2, rng: random.Random | None = None):
        self.cfg = cfg
        self.store = store
        self.provider = cfg.provider
        self.now = now
        self.backoff_seconds = backoff_seconds
        self.rng = rng or random.Random()
        self.stats = TranslatorStats()
        self.breaker = CircuitBreaker(cfg.breaker_failures, cfg.breaker_reset_seconds, clock)
        self.limit = SIZE_LIMITS.get(self.provider, 1800)
        self.max_threads = max(1, cfg.concurrency) * 2  # hung requests included
        self._threads = 0
        self._threads_lock = threading.Lock()
        self._sem: asyncio.Semaphore | None = None
        self._sem_loop: asyncio.AbstractEventLoop | None = None
        self._codes: dict[str, str | None] = {lang: self._provider_code(lang) for lang in LANGS}
        self._pool = _InstancePool(self._make_instance)
        self._missing_key = self.provider in KEYED and not cfg.api_key

    # -- configuration checks --------------------------------------------

    @property
    def enabled(self) -> bool:
        """False for provider ``none`` and for a keyed provider without its key."""
        return self.provider != "none" and not self._missing_key

    def supports(self, src: str, dst: str) -> bool:
        """Can the provider translate src -> dst (as deep-translator sees it)?"""
        if src == dst:
            return True
        if self.provider == "none":
            return False
        return self._code(src) is not None and self._code(dst) is not None

    def _code(self, lang: str) -> str | None:
        if lang not in self._codes:
            self._codes[lang] = self._provider_code(lang)
        return self._codes[lang]

    def _provider_code(self, lang: str) -> str | None:
        """The code deep-translator accepts for ``lang`` with this provider, or None.

        Checked offline by constructing the provider's class (the keyed ones with
        a dummy key); Microsoft lists its languages over the network, so it is
        trusted here and checked by its first request.
        """
        if self.provider in ("none", "microsoft"):
            return lang if self.provider == "microsoft" else None
        candidates = [lang]
        name = _LANG_NAMES.get(lang)
        if name:  # MyMemory knows "russian" (-> ru-RU), LibreTranslate "Russian"
            candidates += [name, name.capitalize()]
        for candidate in candidates:
            try:
                obj = self._construct(candidate, candidate, key="offline-check", offline=True)
            except Exception:  # LanguageNotSupportedException, mostly
                continue
            return obj.source
        return None

    def startup_warnings(self) -> list[str]:
        """What readers will miss with this configuration, said once at startup."""
        warnings: list[str] = []
        p = self.provider
        if p == "none":
            return ["translation: provider is none; items are shown in their own language, "
                    "marked [RU]/[KK]/[EN]"]
        if self._missing_key:
            warnings.append(f"translation: provider {p} needs a key in ${self.cfg.api_key_env}, "
                            "which is not set; "
                            "nothing is translated (texts are queued until a key is set)")
        if self.cfg.url and p in KEYED:
            warnings.append(f"translation.url is ignored by provider {p}")
        if p == "microsoft":
            warnings.append("translation: microsoft lists its languages on the first request; "
                            "unsupported pairs show up then")
        missing = [f"{s}->{d}" for s in LANGS for d in LANGS if s != d and not self.supports(s, d)]
        if missing:
            to_target = [s for s in LANGS if s != self.cfg.target and not self.supports(s, self.cfg.target)]
            text = (f"translation: provider {p} (deep-translator {_dt_version()}) cannot translate "
                    + ", ".join(missing) + "; those items are shown in their own language, marked with it")
            if to_target:
                text += f" (readers of the default language {self.cfg.target} get "
                text += ", ".join(s.upper() for s in to_target) + " items untranslated)"
            warnings.append(text)
        return warnings

    # -- deep-translator objects (worker threads only) ---------------------

    def _construct(self, src: str, dst: str, key: str | None = None, offline: bool = False):
        # imported here, not with the module: it brings requests and BeautifulSoup (0.15-0.19 s of
        # import, measured with -X importtime), which a service with provider "none" never needs
        import deep_translator

        p = self.provider
        cfg = self.cfg
        api_key = key if offline else cfg.api_key
        if p == "google":
            obj = deep_translator.GoogleTranslator(source=src, target=dst)
            obj._base_url = self.google_url()  # deep-translator reads the endpoint from here
            return obj
        if p == "libre":
            url = (cfg.url or "https://libretranslate.com").rstrip("/") + "/"
            # deep-translator refuses an empty key; a server without keys gets none sent
            obj = deep_translator.LibreTranslator(source=src, target=dst, api_key=api_key or "unused",
                                                  custom_url=url)
            if not api_key:
                obj.api_key = None
            return obj
        if p == "mymemory":
            obj = deep_translator.MyMemoryTranslator(source=src, target=dst)
            if cfg.url:
                obj._base_url = cfg.url
            return obj
        if p == "deepl":
            return deep_translator.DeeplTranslator(source=src, target=dst, api_key=api_key,
                                                   use_free_api=bool(api_key and api_key.endswith(":fx")))
        if p == "microsoft":
            return deep_translator.MicrosoftTranslator(source=src, target=dst, api_key=api_key)
        if p == "yandex":
            return deep_translator.YandexTranslator(source=src, target=dst, api_key=api_key)
        raise ValueError(f"translate: unknown provider {p!r}")

    def google_url(self) -> str:
        """The Google endpoint: ``url`` when set (a bare host gets ``/m``), else Google's."""
        url = self.cfg.url
        if not url:
            return GOOGLE_DEFAULT_URL
        scheme, sep, rest = url.partition("://")
        if "/" not in rest.strip("/"):
            return url.rstrip("/") + "/m"
        return url

    def _make_instance(self, src: str, dst: str):
        return self._construct(self._codes[src], self._codes[dst])

    def _blocking_translate(self, piece: str, src: str, dst: str) -> str:
        obj = self._pool.take(src, dst)
        out = obj.translate(piece)
        self._pool.give(src, dst, obj)
        if isinstance(out, list):  # Yandex answers with a list of strings
            out = " ".join(str(x) for x in out)
        if not isinstance(out, str) or (not out.strip() and piece.strip()):
            raise _Failed("text", f"translate: empty answer ({type(out).__name__})")
        return out.strip()

    # -- one request in a worker thread, under a deadline -----------------

    async def _request(self, piece: str, src: str, dst: str, timeout: float,
                       on_late: Callable[[str], None] | None) -> str:
        loop = asyncio.get_running_loop()
        with self._threads_lock:
            if self._threads >= self.max_threads:
                raise _Unavailable("translate: all workers busy (requests hanging)")
            self._threads += 1
        fut: asyncio.Future = loop.create_future()

        def settle(outcome: tuple[bool, object]) -> None:
            if not fut.done():
                ok, value = outcome
                fut.set_result(value) if ok else fut.set_exception(value)

        def work() -> None:
            try:
                outcome = (True, self._blocking_translate(piece, src, dst))
            except BaseException as exc:  # handed to the loop, classified there
                outcome = (False, exc)
            finally:
                with self._threads_lock:
                    self._threads -= 1
            try:
                loop.call_soon_threadsafe(settle, outcome)
            except RuntimeError:  # the loop is gone; nobody waits any more
                pass

        self.stats.requests += 1
        started = loop.time()
        threading.Thread(target=work, name="translate", daemon=True).start()
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            self._abandon(fut, on_late, judge_by=None)
            self.stats.timeouts += 1
            raise _Failed("transient", f"translate: no answer within {timeout:.1f}s") from None
        except asyncio.CancelledError:
            # The caller's budget ran out while this request was in flight. The
            # provider is still judged against timeout_seconds, so a slow or
            # hanging provider opens the circuit even when every wait was cut
            # short by the budget.
            self._abandon(fut, on_late, judge_by=started + self.cfg.timeout_seconds)
            raise
        except _Failed:
            raise
        except Exception as exc:
            raise classify(exc) from None

    def _abandon(self, fut: asyncio.Future, on_late: Callable[[str], None] | None,
                 judge_by: float | None) -> None:
        """Look after a request nobody waits for any more (callbacks run on the loop thread).

        An answer is still cached (``on_late``). With ``judge_by`` (sent time +
        timeout_seconds), the provider is judged as if we had waited: no answer
        by then, or an error, counts as a failure for the circuit.
        """
        judged = False

        def judge(kind: str) -> None:
            nonlocal judged
            if not judged:
                judged = True
                self.stats.failures += 1
                self.breaker.failure(kind)

        def done(f: asyncio.Future) -> None:
            if f.cancelled():
                return
            exc = f.exception()  # also marks it retrieved
            if judge_by is not None:
                if exc is not None and classify(exc).kind != "text":
                    judge(classify(exc).kind)
                elif exc is None and asyncio.get_running_loop().time() > judge_by:
                    judge("transient")
            if exc is None and on_late is not None:
                on_late(f.result())

        def overdue() -> None:
            if not fut.done():
                judge("transient")

        fut.add_done_callback(done)
        if judge_by is not None:
            asyncio.get_running_loop().call_at(judge_by, overdue)

    async def _translate_text(self, text: str, src: str, dst: str, deadline: float,
                              on_late: Callable[[str], None] | None = None) -> str:
        """Translate one text (all its pieces) or raise _Failed / _Unavailable."""
        pieces = split_text(text, self.limit)
        out: list[str] = []
        for piece, sep in pieces:
            late = on_late if len(pieces) == 1 else None
            out.append(await self._translate_piece(piece, src, dst, deadline, late) + sep)
        return "".join(out).strip()

    async def _translate_piece(self, piece: str, src: str, dst: str, deadline: float,
                               on_late: Callable[[str], None] | None) -> str:
        loop = asyncio.get_running_loop()
        if self._sem is None or self._sem_loop is not loop:  # a CLI may run several event loops in turn
            self._sem = asyncio.Semaphore(max(1, self.cfg.concurrency))
            self._sem_loop = loop
        attempt = 0
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise _Unavailable("translate: budget spent")
            # Ask the circuit before queueing for a worker, and again after, so
            # texts queued behind a failing provider give up as soon as it opens.
            if not self.breaker.allow():
                if self.breaker.state == "half-open":  # another text carries the trial: await its verdict
                    await asyncio.sleep(min(0.02, remaining))
                    continue
                raise _Unavailable("translate: circuit open")
            trial = self.breaker.state == "half-open"
            try:
                await asyncio.wait_for(self._sem.acquire(), remaining)
            except asyncio.TimeoutError:
                self.breaker.neutral() if trial else None
                raise _Unavailable("translate: budget spent") from None
            except asyncio.CancelledError:
                self.breaker.neutral() if trial else None
                raise
            failed: _Failed | None = None
            recheck = False
            try:
                if self.breaker.state == "open" or (self.breaker.state == "half-open" and not trial):
                    recheck = True  # the circuit changed while we queued: decide again
                else:
                    remaining = max(deadline - loop.time(), 0.001)
                    result = await self._request(piece, src, dst, min(self.cfg.timeout_seconds, remaining),
                                                 on_late)
            except _Failed as exc:
                failed = exc
            except asyncio.CancelledError:
                self.breaker.neutral() if trial else None
                raise
            finally:
                self._sem.release()
            if recheck:
                continue
            if failed is None:
                self.breaker.success()
                return result
            self.stats.failures += 1
            if failed.kind == "text":
                self.breaker.neutral()
                raise failed
            self.breaker.failure(failed.kind)
            attempt += 1
            log.info("translate failed lang=%s->%s attempt=%d kind=%s error=%s",
                     src, dst, attempt, failed.kind, failed)
            if failed.kind in ("rate", "provider") or attempt >= self.cfg.attempts:
                raise failed
            pause = self.backoff_seconds * (2 ** (attempt - 1)) * (0.5 + self.rng.random() / 2)
            wake = min(loop.time() + pause, deadline)
            while loop.time() < wake and self.breaker.state == "closed":  # an opening circuit cuts it short
                await asyncio.sleep(min(0.02, max(0.0, wake - loop.time())))

    # -- public API ---------------------------------------------------------

    def cached(self, text: str, src: str, dst: str) -> str | None:
        """The cached translation (or the text itself when no translation is needed); no request."""
        norm = (text or "").strip()
        if src == dst or not _HAS_WORD.search(norm):
            return text
        if self.provider == "none":
            return None
        return self.store.get_translation(self.provider, src, dst, text_hash(norm))

    async def translate(self, text: str, src: str, dst: str) -> str | None:
        """``text`` in ``dst``, or None when no translation can be had now (never raises)."""
        return (await self.translate_many([(text, src)], dst))[0]

    async def translate_many(self, texts: list[tuple[str, str]], dst: str) -> list[str | None]:
        """Translate ``(text, src)`` pairs into ``dst``; one request per distinct uncached text.

        Returns within ``budget_seconds`` (plus a few milliseconds of SQLite),
        never raises; ``None`` marks a text not translated now (queued for later
        unless the provider cannot do the pair at all).
        """
        results: list[str | None] = [None] * len(texts)
        try:
            await self._translate_many(texts, dst, results)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug here must never cost the reader the alert
            log.exception("translate_many crashed lang=%s", dst)
        return results

    async def _translate_many(self, texts: list[tuple[str, str]], dst: str,
                              results: list[str | None]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.budget_seconds
        wanted: dict[tuple[str, str], list[int]] = {}  # (src, hash) -> positions
        originals: dict[tuple[str, str], str] = {}
        for i, (text, src) in enumerate(texts):
            norm = (text or "").strip()
            if src == dst or not _HAS_WORD.search(norm):
                results[i] = text
                continue
            if not self.supports(src, dst):
                self.stats.unsupported += 1
                continue
            key = (src, text_hash(norm))
            wanted.setdefault(key, []).append(i)
            originals[key] = norm
        if not wanted:
            return
        hits = self.store.get_translations(self.provider, dst, wanted.keys())
        for key, translated in hits.items():
            for i in wanted.pop(key):
                results[i] = translated
                self.stats.cache_hits += 1
        self.stats.cache_misses += len(wanted)
        if not wanted:
            return
        if not self.enabled:
            self.stats.skipped += len(wanted)
            self._queue([(src, dst, h, originals[(src, h)], "translate: provider not configured")
                         for src, h in wanted])
            return

        keys = list(wanted)
        tasks = [asyncio.create_task(self._translate_text(originals[k], k[0], dst, deadline,
                                                          self._late_saver(k[0], dst, k[1])))
                 for k in keys]
        done, not_done = await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()))
        for task in not_done:
            task.cancel()
        if not_done:
            await asyncio.wait(not_done)
        failed: list[tuple[str, str, str, str, str]] = []
        for key, task in zip(keys, tasks):
            src, h = key
            if task.cancelled():
                error = "translate: budget spent"
            elif task.exception() is not None:
                exc = task.exception()
                if isinstance(exc, _Unavailable):
                    self.stats.skipped += 1
                error = str(exc) if isinstance(exc, (_Failed, _Unavailable)) else f"translate: {exc!r}"
                if not isinstance(exc, (_Failed, _Unavailable)):
                    log.error("translate crashed lang=%s->%s", src, dst, exc_info=exc)
            else:
                translated = task.result()
                self.store.put_translation(self.provider, src, dst, h, translated, now=self.now())
                self.stats.translated += 1
                for i in wanted[key]:
                    results[i] = translated
                continue
            failed.append((src, dst, h, originals[key], error))
        if failed:
            self._queue(failed)

    async def warm(self, texts: list[tuple[str, str]], dsts) -> int:
        """Translate ``(text, src)`` pairs into every language in ``dsts`` (reader languages).

        The languages run side by side under the one budget, so this takes no
        longer than one :meth:`translate_many`. Returns how many (text, language)
        translations are now available; the rest are queued. Never raises.
        """
        dsts = list(dict.fromkeys(dsts))
        if not texts or not dsts:
            return 0
        outs = await asyncio.gather(*(self.translate_many(texts, dst) for dst in dsts))
        return sum(1 for out in outs for x in out if x is not None)

    def _queue(self, rows: list[tuple[str, str, str, str, str]]) -> None:
        by_dst: dict[str, list[tuple[str, str]]] = {}
        for src, dst, h, _, _ in rows:
            by_dst.setdefault(dst, []).append((src, h))
        cached = {(dst, *key) for dst, keys in by_dst.items()
                  for key in self.store.get_translations(self.provider, dst, keys)}
        rows = [r for r in rows if (r[1], r[0], r[2]) not in cached]  # a late answer got there first
        if not rows:
            return
        now = self.now()
        self.store.add_translations_pending(self.provider, rows, next_attempt_at=now, now=now)
        self.stats.queued += len(rows)
        log.info("translation queued texts=%d lang=%s", len(rows), ",".join(sorted({r[1] for r in rows})))

    def _late_saver(self, src: str, dst: str, h: str) -> Callable[[str], None]:
        """Cache an answer that came after its deadline (runs on the loop thread)."""

        def save(translated: str) -> None:
            if not isinstance(translated, str) or not translated.strip():
                return
            try:
                self.store.put_translation(self.provider, src, dst, h, translated.strip(), now=self.now())
                self.stats.late += 1
            except Exception:  # the store may be closed by now
                log.debug("late translation not saved lang=%s->%s", src, dst, exc_info=True)

        return save

    async def fill_pending(self, limit: int = 200) -> int:
        """Translate queued texts whose turn has come; return how many were filled.

        Stops early (returning what it filled) when the circuit is open or the
        budget is spent; never raises.
        """
        if not self.enabled or limit <= 0:
            return 0
        try:
            return await self._fill_pending(limit)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("fill_pending crashed")
            return 0

    async def _fill_pending(self, limit: int) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.budget_seconds
        if self.breaker.blocked():
            return 0
        rows = self.store.due_translations(self.provider, self.now(), limit)
        if not rows:
            return 0
        tasks = []
        for r in rows:
            if not self.supports(r["src"], r["dst"]):  # e.g. queued under a key-less start, never doable
                error = f"translate: {self.provider} cannot translate {r['src']}->{r['dst']}"
                self.store.translation_failed(self.provider, r["src"], r["dst"], r["text_hash"], error, None)
                continue
            saver = self._late_saver(r["src"], r["dst"], r["text_hash"])
            tasks.append((r, asyncio.create_task(
                self._translate_text(r["text"], r["src"], r["dst"], deadline, saver))))
        if not tasks:
            return 0
        done, not_done = await asyncio.wait([t for _, t in tasks], timeout=max(0.0, deadline - loop.time()))
        for task in not_done:
            task.cancel()
        if not_done:
            await asyncio.wait(not_done)
        filled = 0
        now = self.now()
        for r, task in tasks:
            if task.cancelled():
                continue
            exc = task.exception()
            if exc is None:
                self.store.put_translation(self.provider, r["src"], r["dst"], r["text_hash"], task.result(),
                                           now=now)
                filled += 1
                continue
            if isinstance(exc, _Unavailable):
                continue  # not tried: no attempt counted
            attempts = r["attempts"] + 1
            nxt = None
            if attempts < _PENDING_MAX_ATTEMPTS:
                nxt = now + min(_PENDING_BACKOFF * (2 ** (attempts - 1)), _PENDING_BACKOFF_MAX)
            else:
                log.warning("translation given up lang=%s->%s attempts=%d error=%s",
                            r["src"], r["dst"], attempts, exc)
            self.store.translation_failed(self.provider, r["src"], r["dst"], r["text_hash"],
                                          str(exc)[:300], nxt)
        self.stats.filled += filled
        if filled:
            log.info("translation pending filled=%d", filled)
        return filled

    def pending(self) -> int:
        """Texts still waiting for a translation."""
        return self.store.pending_translations(self.provider)
