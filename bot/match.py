"""Topic rules and readers' watch words -> matches that say why.

:class:`Matcher` compiles every term of every topic and watch word into
per-language lookup tables once (normalised key -> the slots it fills), so an
item costs one tokenisation and one cached dictionary look-up per word, however
many watch words there are. Matching runs on the item's own language, title
and summary together, and never needs a translation.

Each :class:`~bot.models.Match` carries the topic id (or ``watch:<id>`` for a
watch word), a score (the summed weights of the topic's matched groups) and the
matched words as they appeared in the text.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from itertools import compress, islice, repeat
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from . import language as lang_mod
from .language import (KK_FOLD, KK_LEXICON, RU_FOLD, fold_word, kk_normalise, name_key, to_cyrillic,
                       to_latin, word_keys)
from .models import LANGS, Match, WatchWord
from .rules import Term, Topic, compile_expression, parse_term

log = logging.getLogger(__name__)

__all__ = ["Matcher", "WatchWord", "expand_watchword", "aexpand_watchword", "compile_watchword_terms"]

MAX_CACHE_WORDS = 10_000  # words remembered per language; cleared beyond this (bounds memory)
NAME_KEY_MIN = 5  # shorter cross-script name keys collide too often (Zhana / жаңа)
PREFIX_BUCKET = 3


@dataclass(frozen=True)
class _Slot:
    """What a term fills when it matches: a topic group (or part) or a watch word."""

    topic: int  # index into Matcher.topics, -1 for a watch word
    group: int  # group index, or the watch-word index
    part: int  # part index within the group, -1 for the group's own terms
    term: Term


@dataclass(eq=False, slots=True)
class _Entry:
    """The cached view of one surface word in one language."""

    keys: tuple[str, ...]
    folded: str
    hits: tuple[int, ...]  # single-word slots hit by this word
    phrases: tuple  # (phrase slot, index of this word in the phrase) anchored on this word


_EMPTY: tuple[int, ...] = ()
_WORDS = "words"  # _scan's result also carries the item's words under this key


def _fold_surface(word: str, lang: str) -> str:
    w = fold_word(word)
    return w.translate(KK_FOLD) if lang == "kk" else w.translate(RU_FOLD)


class Matcher:
    """Topic and watch-word matching for items in en / ru / kk."""

    def __init__(self, topics: Sequence[Topic], watchwords: Sequence[WatchWord] = ()):
        self.topics = tuple(t for t in topics)
        # Kazakh words the suffix stripper stops at: the rules' names, and the one-word terms
        # of the groups that only exclude (NOT ...). Stripped blindly, such a word becomes a
        # short stem that common words share (өрт "fire" and орталық "centre" -> орт), and the
        # exclusion hides true matches. (Not the words of phrases: a phrase's own form would
        # then stop there too, and "аккаунты" would no longer be "аккаунт".)
        self._kk_lexicon = KK_LEXICON | frozenset(
            fold_word(w).translate(KK_FOLD)
            for t in self.topics for g in t.groups
            for term in [*g.terms.get("kk", ()), *(x for p in g.parts for x in p.terms.get("kk", ()))]
            for w in lang_mod.words(term.text)
            if w[:1].isupper() or (g.name not in t.positive and not term.is_phrase)
        )
        self._topic_slots: list[tuple[str, _Slot]] = []
        for ti, topic in enumerate(self.topics):
            for gi, group in enumerate(topic.groups):
                for lang in LANGS:
                    for term in group.terms.get(lang, ()):
                        self._topic_slots.append((lang, _Slot(ti, gi, -1, term)))
                    for pi, part in enumerate(group.parts):
                        for term in part.terms.get(lang, ()):
                            self._topic_slots.append((lang, _Slot(ti, gi, pi, term)))
        self._kk_keys: dict[str, tuple[str, ...]] = {}  # Kazakh keys with this matcher's lexicon
        self._positive = [t.positive for t in self.topics]
        self._predicates = [compile_expression(t.expr) if t.expr is not None else None for t in self.topics]
        self._group_names = [tuple(g.name for g in t.groups) for t in self.topics]
        self._group_weights = [{g.name: g.weight for g in t.groups} for t in self.topics]
        self.set_watchwords(watchwords)

    # -- compiling -----------------------------------------------------------

    def set_watchwords(self, watchwords: Iterable[WatchWord]) -> None:
        """Replace the watch words (the topics stay). The lookup tables are rebuilt on the next
        match, not here: a process that hands matching to workers never builds them."""
        self.watchwords = tuple(watchwords)
        self._stale = True

    def _keys(self, word: str, lang: str) -> tuple[str, ...]:
        if lang == "kk" and lang_mod._CYR.search(word):
            keys = self._kk_keys.get(word)
            if keys is None:
                keys = self._kk_keys[word] = (kk_normalise(fold_word(word), self._kk_lexicon),)
            return keys
        return word_keys(word, lang)

    def _compile(self) -> None:
        slots: list[_Slot] = []
        per_lang: dict[str, list[tuple[int, Term]]] = {lang: [] for lang in LANGS}
        for lang, slot in self._topic_slots:
            slots.append(slot)
            per_lang[lang].append((len(slots) - 1, slot.term))
        self._watch_name_keys: dict[str, dict[str, list[int]]] = {lang: {} for lang in LANGS}
        for wi, ww in enumerate(self.watchwords):
            for lang in LANGS:
                for term in compile_watchword_terms(ww, lang):
                    slots.append(_Slot(-1, wi, -1, term))
                    per_lang[lang].append((len(slots) - 1, term))
                # cross-script name key (a Latin "Tokayev" finds «Тоқаевтың»)
                words = ww.word.split()
                if len(words) == 1 and words[0].isalpha():
                    for source_lang in {ww.lang or "en", lang}:
                        key = name_key(words[0], source_lang)
                        if len(key) >= NAME_KEY_MIN:
                            slots.append(_Slot(-1, wi, -1, Term(ww.word, (words[0].lower(),), (False,))))
                            self._watch_name_keys[lang].setdefault(key, []).append(len(slots) - 1)
        self._slots = slots
        # what a hit counts for: ((topic * 1024 + group) * 256 + part + 1), or -1 - watch word index
        self._slot_key = [((sl.topic * 1024 + sl.group) * 256 + sl.part + 1) if sl.topic >= 0 else -1 - sl.group
                          for sl in slots]
        self._keyinfo = {k: (k >> 18, self._group_names[k >> 18][(k >> 8) & 1023]) for k in self._slot_key if k >= 0}
        self._single: dict[str, dict[str, list[int]]] = {lang: {} for lang in LANGS}
        self._prefix: dict[str, dict[str, list[tuple[str, int]]]] = {lang: {} for lang in LANGS}
        # phrases are anchored on their longest plain word (rarer than "в" or "of")
        self._anchor: dict[str, dict[str, list[tuple[int, int]]]] = {lang: {} for lang in LANGS}
        self._anchor_prefix: dict[str, dict[str, list[tuple[str, int, int]]]] = {lang: {} for lang in LANGS}
        # phrase slot -> per word (is a prefix, folded prefix or the word's keys); a slot id
        # belongs to one language
        self._phrase_keys: list[tuple[tuple[bool, Any], ...] | None] = [None] * len(slots)
        self._loose: set[int] = set()  # phrase slots whose words may lie across punctuation
        for lang in LANGS:
            # anchor each phrase on its word whose key the fewest phrases and terms share
            # (not on "интернет" when forty phrases contain it)
            key_count: dict[str, int] = {}
            for _, term in per_lang[lang]:
                for w, p in zip(term.words, term.prefix):
                    if not p:
                        for k in self._keys(w, lang):
                            key_count[k] = key_count.get(k, 0) + 1
            for sid, term in per_lang[lang]:
                if term.is_phrase:
                    if _BREAK.search(term.text):
                        self._loose.add(sid)  # a term with its own full stop ("U.S. embassy"): no boundary check
                    self._phrase_keys[sid] = tuple(
                        (True, _fold_surface(w, lang)) if p else (False, frozenset(self._keys(w, lang)))
                        for w, p in zip(term.words, term.prefix)
                    )
                    plain = [j for j, p in enumerate(term.prefix) if not p]
                    if plain:
                        # short words (of, a, в, на) are everywhere in text: never the anchor if avoidable
                        j = min(plain, key=lambda k: (len(term.words[k]) < 4,
                                                      min(key_count.get(x, 0) for x in self._keys(term.words[k], lang)),
                                                      -len(term.words[k])))
                        for k in self._keys(term.words[j], lang):
                            self._anchor[lang].setdefault(k, []).append((sid, j))
                    else:
                        pre = _fold_surface(term.words[0], lang)
                        self._anchor_prefix[lang].setdefault(pre[:PREFIX_BUCKET], []).append((pre, sid, 0))
                elif term.prefix[0]:
                    pre = _fold_surface(term.words[0], lang)
                    self._prefix[lang].setdefault(pre[:PREFIX_BUCKET], []).append((pre, sid))
                else:
                    for k in self._keys(term.words[0], lang):
                        self._single[lang].setdefault(k, []).append(sid)
        self._active: dict[str, dict[str, Any]] = {lang: {} for lang in LANGS}

    def _entry(self, word: str, lang: str) -> _Entry:
        keys = self._keys(word, lang)
        folded = _fold_surface(word, lang)
        hits: list[int] = []  # slot ids first, mapped to hit keys below
        phrases: list[tuple[int, int]] = []
        single = self._single[lang]
        anchor = self._anchor[lang]
        for k in keys:
            hits.extend(single.get(k, ()))
            phrases.extend(anchor.get(k, ()))
        bucket = folded[:PREFIX_BUCKET]
        for pre, sid in self._prefix[lang].get(bucket, ()):
            if folded.startswith(pre):
                hits.append(sid)
        for pre, sid, j in self._anchor_prefix[lang].get(bucket, ()):
            if folded.startswith(pre):
                phrases.append((sid, j))
        names = self._watch_name_keys[lang]
        if names:
            nk = name_key(word, lang) if word[:1].isupper() and word.isalpha() else ""
            if nk in names:
                hits.extend(names[nk])
        slot_key = self._slot_key
        return _Entry(keys=keys, folded=folded,
                      hits=tuple(dict.fromkeys(slot_key[sid] for sid in hits)) if hits else _EMPTY,
                      phrases=tuple(dict.fromkeys(phrases)) if phrases else _EMPTY)

    # -- scanning ---------------------------------------------------------------

    def _scan(self, title: str, summary: str, lang: str) -> dict[int, list[tuple[int, str]]]:
        """hit key -> [(position, surface)] of the words or phrases that matched it."""
        if lang not in LANGS:
            raise ValueError(f"match: language must be one of {', '.join(LANGS)}, not {lang!r}")
        if self._stale:
            self._compile()
            self._stale = False
        active = self._active[lang]  # word -> its entry when it hits anything, else 0
        text = f"{title}\n{summary}" if summary else title
        ws = lang_mod._WORD.findall(text)
        flags = list(map(active.get, ws, repeat(None)))
        if None in flags:
            if len(active) > MAX_CACHE_WORDS:
                active.clear()
                self._kk_keys.clear()
            for i, w in enumerate(ws):
                if flags[i] is None:
                    e = active.get(w)
                    if e is None:
                        e = self._entry(w, lang)
                        e = active[w] = e if (e.hits or e.phrases) else 0
                    flags[i] = e
        found: dict[int, list] = {}
        positions = list(compress(range(len(ws)), flags))
        if not positions:
            return found
        phrase_at = None
        for i in positions:
            e = flags[i]
            for key in e.hits:
                hits = found.get(key)
                if hits is None:
                    found[key] = [i]  # a word hit is its position; the surface is ws[i]
                else:
                    hits.append(i)
            if e.phrases:
                if phrase_at is None:
                    phrase_at = [i]
                else:
                    phrase_at.append(i)
        if phrase_at:
            slot_key = self._slot_key
            done: set[int] = set()
            spans: list[tuple[int, int]] = []  # the words' (start, end) in text, found as far as needed
            words_at = None
            phrase_keys = self._phrase_keys
            end = len(ws)
            for i in phrase_at:
                for sid, j in flags[i].phrases:
                    key = slot_key[sid]
                    if key in done:
                        continue  # the group already has a phrase here: its other phrases add nothing
                    start = i - j
                    want = phrase_keys[sid]
                    n = len(want)
                    if start < 0 or start + n > end:
                        continue
                    # each word of the phrase in turn: a prefix of the folded word, or a shared key
                    at = start
                    for is_prefix, k in want:
                        e = flags[at]  # the word's entry, or 0 for a word that hits nothing by itself
                        if is_prefix:
                            if not (e.folded if e else _fold_surface(ws[at], lang)).startswith(k):
                                break
                        elif k.isdisjoint(e.keys if e else self._keys(ws[at], lang)):
                            break
                        at += 1
                    else:
                        last = start + n - 1
                        if last >= len(spans):
                            if words_at is None:
                                words_at = lang_mod._WORD.finditer(text)
                            spans.extend(m.span() for m in islice(words_at, last + 1 - len(spans)))
                        a, b = spans[start][0], spans[last][1]
                        if _BREAK.search(text, a, b) and sid not in self._loose:
                            continue  # its words lie on both sides of a full stop, comma, line break...
                        done.add(key)
                        found.setdefault(key, []).append((start, text[a:b]))
        if found:
            found[_WORDS] = ws
        return found

    # -- public ---------------------------------------------------------------------

    def match(self, title: str, summary: str, lang: str) -> list[Match]:
        """Topic and watch-word matches of one item, best score first."""
        return self._matches(self._scan(title or "", summary or "", lang))

    def match_with_concepts(self, title: str, summary: str, lang: str) -> tuple[list[Match], set[str]]:
        """``(match(...), concepts(...))`` of one item from a single scan of its text."""
        found = self._scan(title or "", summary or "", lang)
        concepts = self._concepts(found)
        return self._matches(found), concepts

    def _matches(self, found: dict) -> list[Match]:
        """The matches of a :meth:`_scan` result (consumes its words entry)."""
        if not found:
            return []
        ws = found.pop(_WORDS)
        # topic index -> {group name: hits}; only positive groups keep their hits
        per_topic: dict[int, dict[str, list[tuple[int, str]]]] = {}
        per_watch: dict[int, list[tuple[int, str]]] = {}
        keyinfo = self._keyinfo
        for key, hits in found.items():
            if key < 0:
                per_watch[-1 - key] = hits
                continue
            ti, name = keyinfo[key]
            groups = per_topic.get(ti)
            if groups is None:
                per_topic[ti] = {name: hits}
            elif name in groups:
                groups[name] = groups[name] + hits
            else:
                groups[name] = hits
        out: list[Match] = []
        for ti, groups in per_topic.items():
            predicate = self._predicates[ti]
            if predicate is None or not predicate(groups):
                continue
            weights = self._group_weights[ti]
            positive = self._positive[ti]
            score = 0.0
            hits = []
            for name, hs in groups.items():
                if name in positive:
                    score += weights[name]
                    hits += hs
            topic = self.topics[ti]
            if score < topic.threshold or score <= 0:
                continue
            out.append(Match(topic=topic.id, score=round(score, 3), terms=_ordered_terms(hits, ws)))
        for wi, hits in per_watch.items():
            out.append(Match(topic=f"watch:{self.watchwords[wi].id}", score=1.0, terms=_ordered_terms(hits, ws)))
        if len(out) > 1:
            out.sort(key=lambda m: (-m.score, m.topic))
        return out

    def match_many(self, items: Iterable[tuple[str, str, str]]) -> list[list[Match]]:
        return [self.match(t, s, lang) for t, s, lang in items]

    def concepts(self, title: str, summary: str, lang: str) -> set[str]:
        """Language-independent concept ids of every topic group (or part) that matched.

        For example ``{"csto", "deploy", "place:almaty"}``: the same event told
        in English, Russian and Kazakh yields the same ids. Groups with
        ``concept = ""`` are left out.
        """
        return self._concepts(self._scan(title or "", summary or "", lang))

    def _concepts(self, found: dict) -> set[str]:
        """The concept ids of a :meth:`_scan` result (leaves it as it is)."""
        out: set[str] = set()
        for key in found:
            if key is _WORDS or key < 0:
                continue
            tg, part = divmod(key, 256)
            ti, gi = divmod(tg, 1024)
            group = self.topics[ti].groups[gi]
            concept = group.parts[part - 1].concept if part else group.concept
            if concept and group.concept:
                out.add(concept)
        return out


# What may not lie between two words of one phrase: the end of a sentence or clause, the
# title's end (the summary follows on a new line), brackets, a spaced dash. Hyphens,
# quotes and apostrophes may ("интернет-банк", «технические работы»).
_BREAK = re.compile(r"[.,;:!?…()\[\]{}\n\r]|\s[\u2013\u2014-]\s")


def _ordered_terms(hits: list, ws: list[str]) -> list[str]:
    """Matched surfaces in order of appearance, each once (case-insensitively);
    a word already shown inside a matched phrase is not repeated. A hit is a
    word position (the surface is ws[i]) or (start, phrase surface)."""
    seen: dict[str, str] = {}
    if all(type(h) is int for h in hits):
        for i in sorted(hits):
            w = ws[i]
            k = w.lower()
            if k not in seen:
                seen[k] = w
        return list(seen.values())
    for _, surface in sorted((h, ws[h]) if type(h) is int else h for h in hits):
        seen.setdefault(surface.lower(), surface)
    phrases = [k for k in seen if " " in k or "-" in k]
    if phrases:
        inside = {w for k in phrases for w in lang_mod._WORD.findall(k)}
        return [v for k, v in seen.items() if k in phrases or k not in inside]
    return list(seen.values())


# -- watch words -------------------------------------------------------------------------


def compile_watchword_terms(ww: WatchWord, lang: str) -> list[Term]:
    """The terms a watch word is matched with in ``lang``: its expansions and the word itself."""
    texts = list(ww.expansions.get(lang, [])) + [ww.word]
    out: list[Term] = []
    seen: set[str] = set()
    for text in texts:
        try:
            term = parse_term(text, f"watchwords[{ww.id}]")
        except ValueError:
            continue
        if term.text.lower() not in seen:
            seen.add(term.text.lower())
            out.append(term)
    return out


MAX_WATCHWORD_CHARS = 64


def _clean_word(word: str) -> str:
    if not isinstance(word, str):
        raise ValueError("watch word: must be text")
    word = " ".join(word.split())
    if not word:
        raise ValueError("watch word: is empty")
    if len(word) > MAX_WATCHWORD_CHARS:
        raise ValueError(f"watch word: longer than {MAX_WATCHWORD_CHARS} characters")
    try:
        parse_term(word, "watch word")
    except ValueError as exc:
        raise ValueError(f"watch word: {getattr(exc, 'problem', exc)}") from None
    return word


def _word_lang(word: str) -> str:
    """The language of a lone watch word: Latin -> en, Kazakh letters -> kk, else ru."""
    if not lang_mod._CYR.search(word):
        return "en"
    if any(c in lang_mod.KK_LETTERS for c in word):
        return "kk"
    return "ru"


def _transliterate(word: str, src: str, dst: str) -> str | None:
    if src == dst:
        return None
    cyr = lang_mod._CYR.search(word) is not None
    if dst == "en":
        return to_latin(word) if cyr else None
    if not cyr:
        cyrillic = to_cyrillic(word)
        return cyrillic[:1].upper() + cyrillic[1:] if word[:1].isupper() else cyrillic
    if src == "kk" and dst == "ru":
        return word.translate(KK_FOLD) if any(c in lang_mod.KK_LETTERS for c in word.lower()) else None
    return None


def _add(expansions: dict[str, list[str]], lang: str, text: str | None) -> None:
    if not isinstance(text, str):
        return
    text = " ".join(text.split())
    if not text or len(text) > 2 * MAX_WATCHWORD_CHARS:
        return
    if text.lower() not in {t.lower() for t in expansions[lang]}:
        expansions[lang].append(text)


def _expand(word: str, results: dict[str, Any]) -> tuple[str, dict[str, list[str]]]:
    src = _word_lang(word)
    expansions: dict[str, list[str]] = {lang: [] for lang in LANGS}
    expansions[src].append(word)
    for dst in LANGS:
        if dst == src:
            continue
        translated = results.get(dst)
        if isinstance(translated, str) and translated.strip() and translated.strip().lower() != word.lower():
            _add(expansions, dst, translated)
        else:
            _add(expansions, dst, _transliterate(word, src, dst))
            if not expansions[dst]:
                _add(expansions, dst, word)
    return src, expansions


def _call_sync(translate: Callable, word: str, src: str, dst: str) -> str | None:
    try:
        result = translate(word, src, dst)
        if inspect.isawaitable(result):
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(_await(result))
            if hasattr(result, "close"):
                result.close()
            raise RuntimeError("expand_watchword: an async translator inside a running loop; "
                               "use await aexpand_watchword(...)")
        return result
    except RuntimeError as exc:
        if "aexpand_watchword" in str(exc):
            raise
        log.warning("watch word translation failed lang=%s: %s", dst, exc)
        return None
    except Exception as exc:  # a failing translator must not lose the watch word
        log.warning("watch word translation failed lang=%s: %s", dst, exc)
        return None


async def _await(result):
    return await result


def expand_watchword(word: str, translate: Callable | None = None) -> tuple[str, dict[str, list[str]]]:
    """Detect a watch word's language and expand it into the others.

    ``translate(text, src, dst) -> str | None`` (sync, or async when no event
    loop is running; use :func:`aexpand_watchword` inside one) is tried first;
    when it is missing, returns nothing or fails, the word is transliterated
    (Latin <-> Cyrillic) instead. Returns ``(lang, {lang: [terms]})``.
    """
    word = _clean_word(word)
    src = _word_lang(word)
    results: dict[str, Any] = {}
    if translate is not None:
        for dst in LANGS:
            if dst != src:
                results[dst] = _call_sync(translate, word, src, dst)
    return _expand(word, results)


async def aexpand_watchword(word: str, translate: Callable | None = None,
                            timeout: float = 15.0) -> tuple[str, dict[str, list[str]]]:
    """:func:`expand_watchword` for async code; ``translate`` may be sync or async."""
    word = _clean_word(word)
    src = _word_lang(word)
    results: dict[str, Any] = {}
    if translate is not None:
        for dst in LANGS:
            if dst == src:
                continue
            try:
                result = translate(word, src, dst)
                if inspect.isawaitable(result):
                    result = await asyncio.wait_for(result, timeout)
                results[dst] = result
            except Exception as exc:  # fall back to transliteration
                log.warning("watch word translation failed lang=%s: %s", dst, exc)
    return _expand(word, results)
