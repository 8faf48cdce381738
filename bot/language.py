"""Language detection, normalised tokens and transliteration for en / ru / kk.

Everything here is pure and cached; nothing heavy happens at import time (the
lingua detector and the pymorphy3 analyser are built on first use).

Detection (:func:`detect`, :func:`detect_many`)
    Cheap script evidence first, lingua only when it is needed:

    * only Latin letters -> ``en``; no letters at all -> the feed's hint;
    * Kazakh-specific letters (ә ғ қ ң ө ұ ү һ і), and no Russian function
      words -> ``kk``; Russian function words (в, на, и, что, ...) and no
      Kazakh letters -> ``ru``; a Russian text quoting a Kazakh name stays
      ``ru`` (few Kazakh letters against several function words);
    * a Cyrillic text of a few words with no clue either way (names, "Президент
      Токаев") takes the feed's declared language (the hint) when it is ru/kk;
    * anything else (mixed text, longer text without either clue) goes to
      lingua restricted to the three languages, in its low accuracy mode
      (trigram models: about 4 MB instead of 70); a low-confidence answer
      defers to the hint.

Tokens (:func:`tokens`, :func:`word_keys`)
    ``en``: Snowball English stems. ``ru``: pymorphy3 lemmas for dictionary
    words; unknown words and capitalised names use a light case-ending
    stripper (pymorphy guesses names badly: it reads «Токаев» as a form of
    «токай» and «Жанаозен» as an adjective; Snowball stems «Казахстан» and
    «Казахстане» differently). ``kk``: :func:`kk_stem`, the documented suffix
    stripper below, then folding of the Kazakh letters onto their Russian
    look-alikes (ң->н, ө->о, ...), so that text typed without Kazakh letters
    and Russian spellings of Kazakh names meet the same key.

    :func:`word_keys` gives the *set* of keys the matcher compares (for
    Russian every likely lemma plus the stripped stem), :func:`tokens` one
    token per word for other modules (story clustering).

Transliteration (:func:`to_latin`, :func:`to_cyrillic`, :func:`name_key`)
    ``to_latin`` writes Russian and Kazakh Cyrillic in plain ASCII Latin
    (Алматы -> Almaty, Жаңаөзен -> Zhanaozen). ``name_key`` folds a word of
    any of the three languages to a crude script-independent key for
    comparing names (Tokayev / Токаев / Тоқаевтың -> ``tokaev``).
"""

from __future__ import annotations

import logging
import re
import threading
from functools import lru_cache
from typing import Sequence

from .models import LANGS

log = logging.getLogger(__name__)

# -- character classes ----------------------------------------------------------

# entries per word cache below: most words of a day's news are a few thousand frequent ones,
# so a small cache hits nearly as often as a large one, and each process stays small for months
WORD_CACHE = 10_000

KK_LETTERS = frozenset("әғқңөұүһіӘҒҚҢӨҰҮҺІ")
_CYR = re.compile(r"[а-яёА-ЯЁәғқңөұүһіӘҒҚҢӨҰҮҺІ]")
_LAT = re.compile(r"[A-Za-z]")
_WORD = re.compile(r"[^\W_]+")
_LETTERS = re.compile(r"[^\W\d_]")

# Words that are (practically) only Russian: prepositions, conjunctions,
# particles. Kazakh has postpositions and suffixes instead.
RU_FUNCTION_WORDS = frozenset(
    "в во на и с со по к ко о об от до за из для не что как это при после против также "
    "или но уже был была были было будет его ее её их который которая которые которых "
    "между над под через без у же ли бы чтобы более".split()
)
# Frequent Kazakh words written without any Kazakh-specific letter.
KK_PLAIN_WORDS = frozenset(
    "мен бен пен туралы бойынша деп болды болып жылы осы бар бойы кезде тағы арқылы "
    "дейін кейін жатыр еді екен емес сияқты".split()
)

# Latin letters that look like Cyrillic ones (mixed-script words are usually typos
# or deliberate look-alikes; Kazakh sites often type Latin i for і).
_HOMOGLYPHS = str.maketrans({
    "a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у", "i": "і",
    "k": "к", "m": "м", "t": "т", "h": "һ", "b": "в", "A": "А", "E": "Е", "O": "О",
    "P": "Р", "C": "С", "X": "Х", "Y": "У", "I": "І", "K": "К", "M": "М", "T": "Т",
    "H": "Н", "B": "В",
})


# -- detection ---------------------------------------------------------------------

_detector = None
_detector_lock = threading.Lock()

# Below this lingua confidence (for the best language) the hint wins.
MIN_CONFIDENCE = 0.75
# Cyrillic text of at most this many words, with no evidence either way, takes the feed's
# language (ru or kk) without asking lingua: its trigram models are sure of themselves on a
# name or two ("Алматы": 0.998 Kazakh) where there is nothing to go on.
SHORT_WORDS = 3


def _get_detector():
    global _detector
    if _detector is None:
        with _detector_lock:
            if _detector is None:
                from lingua import Language, LanguageDetectorBuilder

                # low accuracy mode: trigram models only. The full models cost about 70 MB
                # of RSS in every process that detects (a worker runs for months); trigrams
                # cost about 4 MB. Only Cyrillic text without script or function-word
                # evidence reaches lingua (see _evidence); on the team's labelled items
                # both modes detect every one right (tests/test_language.py checks the
                # trigram mode against them, with wrong hints and Kazakh letters folded).
                _detector = (
                    LanguageDetectorBuilder.from_languages(Language.ENGLISH, Language.RUSSIAN, Language.KAZAKH)
                    .with_low_accuracy_mode()
                    .build()
                )
    return _detector


_LINGUA_CODES = {"ENGLISH": "en", "RUSSIAN": "ru", "KAZAKH": "kk"}


_CYR_LETTERS = "абвгдеёжзийклмнопрстуфхцчшщъыьэюяәғқңөұүһі"
_DEL_CYR = {ord(c): None for c in _CYR_LETTERS + _CYR_LETTERS.upper()}
_DEL_LAT = {ord(c): None for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"}
_DEL_KK = {ord(c): None for c in KK_LETTERS}


def _evidence(text: str, hint: str | None) -> str | None:
    """Decide from the script and function words; None when lingua must decide.

    Counts are made with C-level string operations (translate, split, set
    membership through map): this runs for every new item of a poll cycle.
    """
    if not _CYR.search(text):
        if _LAT.search(text):
            return "en"
        return hint if hint in LANGS else "en"
    n = len(text)
    cyr = n - len(text.translate(_DEL_CYR))
    lat = n - len(text.translate(_DEL_LAT))
    if lat > 3 * cyr:
        return "en"
    kk = n - len(text.translate(_DEL_KK))  # Kazakh-specific letters
    words = text.lower().split()
    ru_words = sum(map(RU_FUNCTION_WORDS.__contains__, words))
    kk_plain = sum(map(KK_PLAIN_WORDS.__contains__, words))
    kk_share = kk / cyr
    if ru_words == 0 and (kk >= 2 or (kk and (cyr <= 30 or kk_plain))):
        return "kk"
    if ru_words == 0 and kk_plain >= 2:
        return "kk"
    if kk == 0 and kk_plain == 0 and ru_words >= 1:
        return "ru"
    if ru_words >= 3 and kk_share < 0.03:
        return "ru"  # Russian text quoting a Kazakh name or two
    if kk_share >= 0.05 and ru_words <= 1 and kk_plain + kk >= 4:
        return "kk"
    if hint in ("ru", "kk") and len(words) <= SHORT_WORDS:
        return hint  # a few words that read the same in both (names, "Президент Токаев"): the feed's language
    return None


def _from_confidences(confidences, text: str, hint: str | None) -> str:
    best = None
    best_value = -1.0
    for c in confidences:
        code = _LINGUA_CODES.get(c.language.name)
        if code and c.value > best_value:
            best, best_value = code, c.value
    if best is None:
        return hint if hint in LANGS else "en"
    has_cyr = _CYR.search(text) is not None
    if hint in LANGS and best_value < MIN_CONFIDENCE:
        # the hint must still fit the script: an "en" feed's Cyrillic item is not English
        if not (hint == "en" and has_cyr) and not (hint != "en" and not has_cyr):
            return hint
    if best == "en" and has_cyr:
        return hint if hint in ("ru", "kk") else "ru"
    return best


def detect(text: str, hint: str | None = None) -> str:
    """The language of ``text``: one of ``en``, ``ru``, ``kk``.

    ``hint`` is the feed's declared language, used when the text gives too
    little evidence (no letters, or a short ambiguous headline).
    """
    if hint is not None and hint not in LANGS:
        hint = None
    text = text or ""
    decided = _evidence(text, hint)
    if decided is not None:
        return decided
    return _from_confidences(_get_detector().compute_language_confidence_values(text), text, hint)


def detect_many(pairs: Sequence[tuple[str, str | None]]) -> list[str]:
    """:func:`detect` for many (text, hint) pairs; lingua runs in parallel on the rest."""
    out: list[str | None] = []
    pending: list[int] = []
    for i, (text, hint) in enumerate(pairs):
        if hint is not None and hint not in LANGS:
            hint = None
        decided = _evidence(text or "", hint)
        out.append(decided)
        if decided is None:
            pending.append(i)
    if pending:
        texts = [pairs[i][0] or "" for i in pending]
        if len(texts) == 1:
            results = [_get_detector().compute_language_confidence_values(texts[0])]
        else:
            results = _get_detector().compute_language_confidence_values_in_parallel(texts)
        for i, confidences in zip(pending, results):
            hint = pairs[i][1] if pairs[i][1] in LANGS else None
            out[i] = _from_confidences(confidences, pairs[i][0] or "", hint)
    return out  # type: ignore[return-value]


# -- Kazakh suffix stripping ------------------------------------------------------------
#
# Kazakh is agglutinative: STEM + plural + possessive + case for nouns,
# STEM + voice + tense/participle + person for verbs, each suffix in several
# vowel-harmony / assimilation variants. No analyser is available offline, so
# kk_stem strips known inflectional suffixes from the right, longest first,
# until none applies. Query terms and text go through the same function, so
# what matters is that all forms of one word end on the same stem, not that the
# stem is the linguistic root:
#
#   Алматыға, Алматыда, Алматыдағы, Алматы        -> алмат
#   Жаңаөзенде, Жаңаөзен, Жанаозенде               -> жанаозен (after folding)
#   наразылық, наразылықтар, наразылығы, наразылар  -> нараз
#   ұстады, ұсталды, ұсталғандар, ұстап, ұстау      -> уст (after folding)
#
# Guards: a stem keeps at least 3 letters and a vowel; a suffix must fit the
# sound before it (_kk_fits: н-forms after vowels, т/қ/к-forms after voiceless
# consonants); one-letter suffixes are restricted (passive -л/-н, converb -п,
# causative -т only after a vowel; possessive -ы/-і and a verb stem's final
# -а/-е only after a consonant; verbal noun -у anywhere); after each strip a
# final voiced consonant is devoiced (наразылығ -> наразылық, тоб -> топ) so
# that the next step sees the dictionary form.

KK_VOWELS = frozenset("аәеоөұүыіиуэюяё")

KK_SUFFIXES: dict[str, tuple[str, ...]] = {
    # nouns ------------------------------------------------------------
    "plural": ("лар", "лер", "дар", "дер", "тар", "тер"),
    "possessive": ("ымыз", "іміз", "мыз", "міз", "ыңыз", "іңіз", "ңыз", "ңіз", "ым", "ім", "ың", "ің",
                   "сы", "сі"),
    "genitive": ("ның", "нің", "дың", "дің", "тың", "тің"),
    "dative": ("ға", "ге", "қа", "ке", "на", "не", "сына", "сіне", "ына", "іне"),
    "accusative": ("ны", "ні", "ды", "ді", "ты", "ті", "сын", "сін", "ын", "ін"),
    "locative": ("да", "де", "та", "те", "нда", "нде", "сында", "сінде", "ында", "інде"),
    "locative-attributive": ("дағы", "дегі", "тағы", "тегі", "ндағы", "ндегі"),
    "ablative": ("дан", "ден", "тан", "тен", "нан", "нен", "сынан", "сінен", "ынан", "інен"),
    "instrumental": ("менен", "бенен", "пенен", "мен", "бен", "пен"),
    "derivational": ("лық", "лік", "дық", "дік", "тық", "тік", "шылар", "шілер", "шы", "ші",
                     "ушы", "уші", "ғы", "гі", "қы", "кі"),
    # verbs ------------------------------------------------------------
    "past": ("ды", "ді", "ты", "ті", "дым", "дім", "тым", "тім", "дық", "дік", "тық", "тік",
             "дыңыз", "діңіз", "тыңыз", "тіңіз"),
    "participle": ("ған", "ген", "қан", "кен", "атын", "етін", "йтын", "йтін"),
    "present": ("йды", "йді", "уда", "уде"),  # not ады/еді: бұғатта+ды is not бұғатт+ады
    "future": ("мақ", "мек", "бақ", "бек", "пақ", "пек"),
    "converb": ("ып", "іп"),
    "voice": ("ыл", "іл", "ын", "ін"),
    "predicative": ("мын", "мін", "бын", "бін", "пын", "пін", "сың", "сің"),
}
# one-letter suffixes with the context they need
_KK_AFTER_VOWEL = frozenset("лнпт")  # passive, reflexive/passive, converb, causative
_KK_ANYWHERE = frozenset("у")  # verbal noun (ұстау, өшіру)
_KK_AFTER_CONSONANT = frozenset("ыіае")  # possessive 3rd person; stem-final vowel of verbs
_KK_DEVOICE = {"ғ": "қ", "г": "к", "б": "п"}
_KK_MIN_STEM = 3

KK_FOLD = str.maketrans({"ә": "а", "ғ": "г", "қ": "к", "ң": "н", "ө": "о", "ұ": "у", "ү": "у", "һ": "х",
                         "і": "и", "ё": "е"})

# Words the stripper stops at (folded): place names and a few frequent words
# whose blind stripping would go past the dictionary form (Жаңаөзенде would lose
# "нде" instead of "де"; Қазақстан would lose "тан"). The matcher adds the
# capitalised terms of its rules (names) to this set.
KK_LEXICON = frozenset(w.translate(KK_FOLD) for w in """
    қазақстан алматы астана нұр-сұлтан шымкент қарағанды ақтөбе атырау ақтау жаңаөзен маңғыстау
    тараз орал семей өскемен павлодар қостанай петропавл қызылорда түркістан талдықорған
    жезқазған екібастұз теміртау кентау қонаев қапшағай жамбыл ақмола жетісу ұлытау абай
    ресей қырғызстан тәжікстан өзбекстан армения беларусь мәскеу минск ереван душанбе бішкек
    тоқаев назарбаев ақорда мәжіліс сенат ұқшұ одкб интернет митинг ереуіл наразылық жиын шеру
    әскер бітімгер полиция тәртіпсіздік қақтығыс шекара тасқын жаттығу миссия контингент оқиға
    жарылыс өрт сайлау үкімет парламент президент министрлік облыс аудан қала ауыл әкім келесі
    бүкіл бұғат байланыс орта орталық
""".split())


def _kk_suffix_table() -> tuple[str, ...]:
    out = set()
    for group in KK_SUFFIXES.values():
        for s in group:
            out.add(s)
            out.add(s.translate(KK_FOLD))  # text typed without Kazakh letters
    return tuple(sorted(out, key=len, reverse=True))


_KK_TABLE = _kk_suffix_table()
_KK_MAX = max(len(s) for s in _KK_TABLE)
_KK_BY_LEN: dict[int, frozenset[str]] = {
    n: frozenset(s for s in _KK_TABLE if len(s) == n) for n in range(2, _KK_MAX + 1)
}
_KK_VOWELS_FOLDED = frozenset(v.translate(KK_FOLD) for v in KK_VOWELS) | KK_VOWELS


def _devoice(stem: str) -> str:
    last = stem[-1]
    return stem[:-1] + _KK_DEVOICE[last] if last in _KK_DEVOICE else stem


def _has_vowel(s: str) -> bool:
    return not _KK_VOWELS_FOLDED.isdisjoint(s)


# final в, б, г of loanwords are said voiceless: Тоқаевтың, митингтер, клубқа
_KK_VOICELESS = frozenset("кқпстшщфхцчвбг")
_KK_NASAL = frozenset("мнң")
_KK_AFTER_NASAL = frozenset({"нан", "нен", "ның", "нің", "нын", "нин"})  # ablative, genitive (also folded)


def _kk_fits(suffix: str, before: str) -> bool:
    """Sound rules for the suffix's first letter after the stem's last letter.

    n-initial case forms (ның, на, нда, ...) follow vowels (genitive ның/нің and
    ablative нан/нен also м, н, ң); т-, қ- and к-initial forms follow voiceless consonants; д-, ғ- and
    г-initial forms do not. This keeps the stripper off root letters
    (тонна is not тон + на).
    """
    first = suffix[0]
    if first == "н":
        return before in _KK_VOWELS_FOLDED or (suffix in _KK_AFTER_NASAL and before in _KK_NASAL)
    if first in "тқк":
        return before in _KK_VOICELESS
    if first in "дғг":
        return before not in _KK_VOICELESS
    return True


def _kk_cuts(stem: str) -> list[int]:
    """Lengths of the suffixes that may be stripped from ``stem``, longest first."""
    n = len(stem)
    cuts = [size for size in range(min(_KK_MAX, n - _KK_MIN_STEM), 1, -1)
            if stem[-size:] in _KK_BY_LEN[size] and _has_vowel(stem[:-size])
            and _kk_fits(stem[-size:], stem[-size - 1])]
    if n > _KK_MIN_STEM:
        last, before = stem[-1], stem[-2]
        if last in _KK_AFTER_VOWEL and before in _KK_VOWELS_FOLDED:
            cuts.append(1)
        elif last in _KK_ANYWHERE and _has_vowel(stem[:-1]):
            cuts.append(1)
        elif last in _KK_AFTER_CONSONANT and before not in _KK_VOWELS_FOLDED and _has_vowel(stem[:-1]):
            cuts.append(1)
    return cuts


def kk_stem_with(word: str, lexicon: frozenset[str]) -> str:
    """Strip Kazakh inflectional suffixes from a lower-case word (no folding).

    Longest suffix first, repeatedly; but a cut that leaves a word of
    ``lexicon`` (compared folded) wins and stops the stripping.
    """
    stem = word
    for _ in range(10):
        if stem.translate(KK_FOLD) in lexicon:
            break
        cuts = _kk_cuts(stem)
        if not cuts:
            break
        chosen = None
        for cut in cuts:
            candidate = _devoice(stem[:-cut])
            if candidate.translate(KK_FOLD) in lexicon or stem[:-cut].translate(KK_FOLD) in lexicon:
                chosen = stem[:-cut] if stem[:-cut].translate(KK_FOLD) in lexicon else candidate
                break
        stem = chosen if chosen is not None else _devoice(stem[:-cuts[0]])
    return stem


@lru_cache(maxsize=WORD_CACHE)
def kk_stem(word: str) -> str:
    """Strip Kazakh inflectional suffixes from a lower-case word, stopping at KK_LEXICON."""
    return kk_stem_with(word, KK_LEXICON)


def kk_normalise(word: str, lexicon: frozenset[str] | None = None) -> str:
    """The Kazakh matching key of a lower-case word: suffixes stripped, letters folded."""
    stem = kk_stem(word) if lexicon is None else kk_stem_with(word, lexicon)
    return _devoice(stem.translate(KK_FOLD))


# -- Russian ---------------------------------------------------------------------------

_morph = None
_morph_lock = threading.Lock()


def _get_morph():
    global _morph
    if _morph is None:
        with _morph_lock:
            if _morph is None:
                import pymorphy3

                _morph = pymorphy3.MorphAnalyzer()
    return _morph


# Case endings stripped from unknown words and names (one, longest first).
# Not -ов/-ев/-ин: those end surnames (Токаев, Назарбаев).
RU_ENDINGS = tuple(sorted(
    "ами ями ого его ому ему ыми ими ая яя ое ее ые ие ый ий ой ую юю ом ем ам ям ах ях ым им ых их ей "
    "а я у ю е ы и о ь й".split(), key=len, reverse=True))
RU_FOLD = str.maketrans({"ё": "е", "ә": "а", "ғ": "г", "қ": "к", "ң": "н", "ө": "о", "ұ": "у", "ү": "у",
                         "һ": "х", "і": "и"})


def ru_strip(word: str) -> str:
    """Strip one Russian case ending, keeping at least 3 letters (for names, unknown words)."""
    for end in RU_ENDINGS:
        if word.endswith(end) and len(word) - len(end) >= 3:
            return word[: -len(end)]
    return word


@lru_cache(maxsize=WORD_CACHE)
def _ru_keys(word: str) -> tuple[str, tuple[str, ...]]:
    """(primary token, all keys) for a lower-case folded Russian word."""
    if not _CYR.search(word):
        stem = en_stem(word)
        return stem, (stem,)
    morph = _get_morph()
    parses = morph.parse(word)
    stripped = ru_strip(word)
    keys = {"~" + stripped}
    primary = stripped
    if parses:
        known = morph.word_is_known(word)
        top = parses[0].score or 0.0
        for p in parses[:6]:
            if known or (p.score or 0.0) >= 0.3 * top:
                keys.add(p.normal_form.replace("ё", "е"))
        if known:
            primary = parses[0].normal_form.replace("ё", "е")
    return primary, tuple(sorted(keys))


# -- English --------------------------------------------------------------------------

_en_stemmer = None


@lru_cache(maxsize=WORD_CACHE)
def en_stem(word: str) -> str:
    global _en_stemmer
    if _en_stemmer is None:
        import snowballstemmer

        _en_stemmer = snowballstemmer.stemmer("english")
    if _CYR.search(word):
        return word
    return _en_stemmer.stemWord(word)


# -- words and tokens ------------------------------------------------------------------------


def words(text: str) -> list[str]:
    """The words of a text as they appear (letters and digits; hyphens split)."""
    return _WORD.findall(text)


@lru_cache(maxsize=WORD_CACHE)
def fold_word(word: str) -> str:
    """Lower-case, ё->е, and Latin look-alikes inside Cyrillic words made Cyrillic."""
    w = word.lower()
    if _CYR.search(w) and _LAT.search(w):
        w = w.translate(_HOMOGLYPHS)
    return w.replace("ё", "е")


@lru_cache(maxsize=WORD_CACHE)
def word_keys(word: str, lang: str) -> tuple[str, ...]:
    """Every key a word of ``lang`` is matched under (see the module docstring)."""
    w = fold_word(word)
    if lang == "ru":
        return _ru_keys(w.translate(RU_FOLD))[1]
    if lang == "kk":
        if _CYR.search(w):
            return (kk_normalise(w),)
        return (en_stem(w),)
    return (en_stem(w),)


@lru_cache(maxsize=WORD_CACHE)
def word_token(word: str, lang: str) -> str:
    """One normalised token for a word (lemma / stem); what :func:`tokens` returns."""
    w = fold_word(word)
    if lang == "ru":
        w = w.translate(RU_FOLD)
        if not _CYR.search(w):
            return w
        if word[:1].isupper():
            return ru_strip(w)  # names: pymorphy's guesses are unstable
        return _ru_keys(w)[0]
    if lang == "kk" and _CYR.search(w):
        return kk_normalise(w)
    return en_stem(w)


def tokens(text: str, lang: str) -> list[str]:
    """Normalised tokens of ``text`` in ``lang`` (lemmas or stems; cached per word)."""
    if lang not in LANGS:
        raise ValueError(f"language: must be one of {', '.join(LANGS)}, not {lang!r}")
    return [word_token(w, lang) for w in _WORD.findall(text)]


# -- transliteration ---------------------------------------------------------------------

_TO_LATIN = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "yo", "ж": "zh", "з": "z", "и": "i",
    "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
    "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y",
    "ь": "", "э": "e", "ю": "yu", "я": "ya",
    "ә": "a", "ғ": "g", "қ": "k", "ң": "n", "ө": "o", "ұ": "u", "ү": "u", "һ": "h", "і": "i",
}
_LATIN_TABLE = {}
for _c, _l in _TO_LATIN.items():
    _LATIN_TABLE[ord(_c)] = _l
    _LATIN_TABLE[ord(_c.upper())] = _l.capitalize() if _l else ""


def to_latin(text: str) -> str:
    """Cyrillic (Russian and Kazakh letters) -> plain Latin; other characters unchanged.

    ``to_latin("Жаңаөзен") == "Zhanaozen"``, ``to_latin("Алматы") == "Almaty"``.
    """
    return text.translate(_LATIN_TABLE)


_FROM_LATIN = (
    ("shch", "щ"), ("sch", "щ"), ("zh", "ж"), ("kh", "х"), ("ts", "ц"), ("ch", "ч"), ("sh", "ш"),
    ("aye", "ае"), ("oye", "ое"), ("eye", "ее"), ("uye", "уе"), ("iye", "ие"),
    ("yu", "ю"), ("ya", "я"), ("yo", "ё"), ("ye", "е"), ("ay", "ай"), ("ey", "ей"), ("oy", "ой"),
    ("uy", "уй"), ("iy", "ий"),
    ("a", "а"), ("b", "б"), ("c", "к"), ("d", "д"), ("e", "е"), ("f", "ф"), ("g", "г"), ("h", "х"),
    ("i", "и"), ("j", "дж"), ("k", "к"), ("l", "л"), ("m", "м"), ("n", "н"), ("o", "о"), ("p", "п"),
    ("q", "к"), ("r", "р"), ("s", "с"), ("t", "т"), ("u", "у"), ("v", "в"), ("w", "в"), ("x", "кс"),
    ("y", "ы"), ("z", "з"),
)
_FROM_LATIN_RE = re.compile("|".join(re.escape(a) for a, _ in _FROM_LATIN), re.IGNORECASE)
_FROM_LATIN_MAP = dict(_FROM_LATIN)


def to_cyrillic(text: str) -> str:
    """A plain Latin spelling of a Russian/Kazakh name -> Russian-style Cyrillic (lower case).

    Approximate by nature (``Almaty`` -> ``алматы``, ``Zhanaozen`` -> ``жанаозен``,
    ``Tokayev`` -> ``токаев``): used to expand Latin watch words.
    """
    return _FROM_LATIN_RE.sub(lambda m: _FROM_LATIN_MAP[m.group(0).lower()], text.lower())


_NAME_FOLDS = (("shch", "\x01"), ("sh", "\x01"), ("ch", "\x02"), ("zh", "\x03"), ("ts", "\x04"),
               ("kh", "k"), ("h", "k"), ("q", "k"), ("x", "ks"), ("w", "v"), ("j", "\x03"), ("yo", "o"),
               ("ye", "e"), ("iy", "i"), ("yi", "i"), ("y", "i"),
               ("\x01", "sh"), ("\x02", "ch"), ("\x03", "zh"), ("\x04", "ts"))
_VOWELS_LATIN = "aeiou"
_BETWEEN_VOWELS_I = re.compile(r"(?<=[aeou])i(?=[aeou])")
_DOUBLED = re.compile(r"(.)\1+")


@lru_cache(maxsize=WORD_CACHE)
def name_key(word: str, lang: str | None = None) -> str:
    """A crude script-independent key for one name, comparable across languages.

    Inflection is stripped first when ``lang`` is given (ru / kk), then the word
    is transliterated and folded: kh/h/q/k merge, y becomes i, i between vowels
    drops, doubled letters collapse and final vowels go
    (Almaty / Алматы / Алматыға -> ``almat``; Tokayev / Токаев / Тоқаевтың -> ``tokaev``).
    """
    w = fold_word(word)
    if lang == "kk" and _CYR.search(w):
        w = kk_stem(w)
    elif lang == "ru" and _CYR.search(w):
        w = ru_strip(w.translate(RU_FOLD))
    w = to_latin(w).lower()
    for a, b in _NAME_FOLDS:
        w = w.replace(a, b)
    w = _BETWEEN_VOWELS_I.sub("", w)
    w = _DOUBLED.sub(r"\1", w)
    stripped = w.rstrip(_VOWELS_LATIN)
    return stripped if len(stripped) >= 3 else w


def name_keys(text: str, lang: str | None = None) -> list[str]:
    """:func:`name_key` of every word of ``text``."""
    return [name_key(w, lang) for w in _WORD.findall(text)]
