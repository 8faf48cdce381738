"""One event, one story: near-duplicate and cross-language clustering.

Every stored item is assigned to a story (:meth:`StoryIndex.assign`). An item
joins the most similar story seen within ``[stories] window_hours`` of its
time, when the similarity clears :data:`JOIN_THRESHOLD`; otherwise it starts a
story of its own. Stories never merge and items never move: an alert already
sent for a story stays true.

What is compared (:func:`fingerprint`, :func:`similarity`)
    *Text*: the item's normalised content tokens (``bot.language.tokens``,
    stop words removed), compared between items of one language, and the
    English tokens of an item (its own, or those of its English translation
    when the translator has one) compared across languages.

    *Anchors*, the language-independent fingerprint: names transliterated to
    one Latin key (``bot.language.name_key``: Almaty = Алматы = Алматыда ->
    ``almat``), numbers (``1,500`` = ``1 500`` = ``1.5 thousand`` -> ``1500``),
    calendar dates (5 January = 5 января = 5 қаңтар -> ``d:01-05``), the
    concept ids of the topic rules (``bot.match.Matcher.concepts``) and a small
    built-in lexicon of event words and names that do not transliterate
    (curfew = комендантский час = коменданттық сағат -> ``e:curfew``; CSTO =
    ОДКБ = ҰҚШҰ -> ``e:csto``).

    Every key is weighted by its rarity among the items of the window (an
    inverse document frequency kept in memory and rebuilt from the index on
    start), so "Kazakhstan" counts for little and "Zhanaozen" for a lot.

The score of an item against a story is its best score against the story's
members retrieved from the index. Within one language it is the better of the
text score and the mean of text and anchors; across languages the anchor score
(with at least :data:`MIN_SHARED_ANCHORS` shared), or with translations the
better of that and the translated text score. Penalties keep different events
on the same topic and day apart: different kinds of event (a curfew vs
deaths), a stop vs a return (internet cut vs restored), different non-year
numbers, and more than :data:`TIME_GRACE_HOURS` between the two reports.

Cost stays flat as the store grows: candidates come from an index, never a
scan. ``story_keys`` holds one row per (day, key, time, item) for the anchors
and for MinHash LSH bands of the token sets; a lookup reads, day by day, the
newest :data:`POSTINGS_PER_KEY` rows of at most :data:`MAX_QUERY_KEYS` anchors
(the rarest) and of the bands inside the window, and scores the
:data:`MAX_CANDIDATES` candidates sharing the most key weight. An in-memory
Bloom filter per day (:class:`KeyFilter`) skips the (day, key) reads that
certainly hold nothing, which is most of them (a band meets another only for a
near-duplicate); rows another connection writes are read into it by item id
(``PRAGMA data_version`` says when). Every :data:`PRUNE_EVERY` assignments, a
slice of about :data:`PRUNE_ITEMS` items of the oldest whole day the window can
no longer reach (two windows behind the newest item filed, or behind the clock
when that is earlier) leaves the index (:meth:`StoryIndex.prune`, deleting ranges);
their stories stay.

Where the work runs: :func:`fingerprint` is pure and its result (with the LSH
band keys, :func:`index_keys`) pickles, so the pipeline computes it in a worker
process and passes it in (``assign(..., fp=...)``); the store work stays on the
store's thread.

Alert rule (:func:`grew_materially`): a reader gets one alert when a story
first matches, and one update at most, when the story has grown materially:
it is now reported in a language it was not reported in before, or by at least
``max(2, half the sources alerted)`` more distinct sources.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import sys
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from itertools import repeat
from operator import xor
from typing import Iterable

from . import language
from .models import LANGS, Item, from_iso

log = logging.getLogger(__name__)

# -- tuning ---------------------------------------------------------------------
JOIN_THRESHOLD = 0.30  # best score needed to join an existing story
MIN_SHARED_ANCHORS = 2  # across languages without translation: shared anchors needed
EVENT_CONFLICT = 0.4  # factor when both name kinds of event and share none
NUMBER_CONFLICT = 0.8  # factor when both carry numbers and share none
TIME_GRACE_HOURS = 12  # items further apart than this need more in common
TIME_HALF_HOURS = 48
MAX_QUERY_KEYS = 10  # rarest anchors looked up per item
POSTINGS_PER_KEY = 24  # most recent index rows read per key and day
MAX_CANDIDATES = 12  # candidate items scored per item (those sharing the most key weight)
PRUNE_EVERY = 100  # assignments between two prunes of the index
PRUNE_ITEMS = 200  # items taken out of the index at most per prune (twice what arrived meanwhile)
MINHASH_PERMS = 12
LSH_ROWS = 2  # rows per band: 6 bands of 2 rows (pairs above a Jaccard of about 0.4 meet)
BAND_WEIGHT = 1.0  # a shared LSH band counts like a common anchor when ranking candidates
NAME_KEY_CHARS = 6  # name keys are cut to this many letters (crude cross-language stemming)
GROWTH_WINDOW = timedelta(hours=1)


# -- lexicons (written for this module) --------------------------------------------

STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("""
        a an the and or but if of in on at to for from by with without about into onto over under after
        before during since until than then as is are was were be been being has have had do does did
        will would shall should can could may might must not no nor so such this that these those it its
        they them their he she his her we our you your i me my who whom whose which what when where why
        how all any both each few more most other some own same very just also only up down out off
        again further once here there said says say told according amid among against while via per new
        latest update report reports reported news today yesterday week year years day days month
        monday tuesday wednesday thursday friday saturday sunday
        """.split()),
    "ru": frozenset("""
        и в во не на с со по к ко о об от до за из для что как это при после против также или но уже
        был была были было быть будет будут его ее её их который которая которые которых которого
        между над под через без у же ли бы чтобы более менее он она они оно мы вы я ты этот эта эти
        того тем том этом этого этой того где когда если то так там тут весь все всех всё свой своих
        своей сообщил сообщила сообщили сообщает сообщается заявил заявила заявили говорится
        отметил отметила словам данным году года годы день дня неделе среду четверг пятницу
        понедельник вторник субботу воскресенье сегодня вчера новости около ранее пока еще ещё
        """.split()),
    "kk": frozenset("""
        және мен бен пен да де та те ғана үшін туралы бойынша деп деді деген болды болып болса
        болатын жылы осы сол бұл ол олар біз сіз бар жоқ бойы кезде тағы арқылы дейін кейін жатыр
        еді екен емес сияқты немесе бірақ дегенмен ал әрі оның олардың соң қатысты хабарлады
        мәлім мәлімдеді айтты атап өтті жылғы күні бүгін кеше аптада сәрсенбі бейсенбі жұма дүйсенбі
        сейсенбі сенбі жексенбі шамамен қазір әлі тағы
        """.split()),
}

# concept -> words in any of the three languages. "word*" is a prefix of a word
# (compared lower-case, ё as е), anything else is the whole word. Event words
# first, then names whose spellings do not transliterate into each other.
LEXICON: dict[str, tuple[str, ...]] = {
    "curfew": ("curfew*", "комендантск*", "комендантт*"),
    "emergency": ("emergency", "чрезвычайн*", "чп", "төтенше*"),
    "death": ("killed", "kill", "dead", "death*", "died", "dies", "die", "toll", "fatalit*", "bodies", "body",
              "погиб*", "гибел*", "смерт*", "жертв*", "убит*", "скончал*", "умер*", "тел",
              "қаза", "қайтыс", "мерт*", "өлі*", "құрбан*"),
    "injury": ("injur*", "wounded", "hurt", "hospitalis*", "hospitaliz*", "ранен*", "пострадав*",
               "травм*", "госпитализ*", "жарақат*", "жаралан*", "зардап*"),
    "arrest": ("arrest*", "detain*", "detention", "custody", "задерж*", "арест*", "ұстал*", "ұстад*",
               "қамау*", "қамал*", "қамауға"),
    "protest": ("protest*", "rally", "rallies", "demonstrat*", "unrest", "riot*", "протест*", "митинг*",
                "демонстрац*", "беспорядк*", "наразылы*", "шеру*", "тәртіпсіздік*"),
    "troops": ("troop*", "soldier*", "peacekeep*", "deploy*", "military", "army", "войск*", "военн*",
               "миротвор*", "контингент*", "военнослужащ*", "әскер*", "бітімгер*", "контингент"),
    "withdrawal": ("withdraw*", "pullout", "вывод*", "выведут", "шығар*", "әкет*"),
    "internet": ("internet", "online", "connectivity", "mobile", "messenger*", "интернет*", "мессендж*",
                 "связь", "связи", "байланыс*"),
    "fire": ("fire", "fires", "blaze", "wildfire*", "burn*", "пожар*", "возгоран*", "горел*", "сгорел*",
             "өрт*", "жанып", "өртен*"),
    "flood": ("flood*", "inundat*", "паводк*", "наводнен*", "подтоп*", "тасқын*", "су басқан", "суға"),
    "quake": ("earthquake*", "quake*", "tremor*", "seismic", "землетрясен*", "толчк*", "сейсм*",
              "сілкініс*", "жерсілкініс*"),
    "explosion": ("explosion*", "explod*", "blast*", "взрыв*", "взорв*", "жарылыс*", "жарыл*"),
    "election": ("election*", "elect*", "vote*", "voting", "ballot*", "referendum*", "выбор*", "голосован*",
                 "избира*", "референдум*", "сайлау*", "дауыс*", "референдум"),
    "court": ("court*", "sentenc*", "trial", "verdict*", "judge*", "convict*", "prison*", "jail*",
              "суд", "суда", "суде", "судом", "приговор*", "осужд*", "тюрьм*", "колони*",
              "сот", "сотта", "соты", "сотқа", "үкім*", "түрме*", "бас бостандығынан"),
    "resign": ("resign*", "dismiss*", "sacked", "fired", "отставк*", "уволен*", "освобожд*", "отставка*",
               "отставкаға", "қызметінен", "босатыл*"),
    "appoint": ("appoint*", "назнач*", "тағайында*"),
    "price": ("price*", "tariff*", "inflation", "cost*", "цен", "цена", "цены", "ценам", "ценах", "ценой",
              "подорож*", "тариф*", "инфляц*", "баға*", "бағас*", "қымбатта*", "инфляция*"),
    "fuel": ("fuel", "gas", "lpg", "petrol", "gasoline", "diesel", "газ", "газа", "газу", "газом",
             "топлив*", "бензин*", "дизел*", "сжиженн*", "жанармай*", "газға", "газды"),
    "interest-rate": ("rate", "rates", "ставк*", "мөлшерлеме*"),
    "currency": ("tenge", "dollar*", "exchange", "devaluat*", "тенге", "доллар*", "курс*", "девальвац*",
                 "теңге*", "бағам*"),
    "road-crash": ("crash*", "collision*", "collided", "accident*", "авари*", "дтп", "столкнов*",
                   "столкнул*", "апат*", "жол-көлік", "соқтығыс*"),
    "aviation": ("plane*", "aircraft", "airliner*", "flight*", "airport*", "airline*", "самолет*", "рейс*",
                 "аэропорт*", "авиакомпан*", "ұшақ*", "әуежай*", "әуе", "рейс"),
    "rail": ("train*", "rail*", "railway*", "derail*", "поезд*", "железнодорож*", "вагон*", "пойыз*",
             "теміржол*", "вагон"),
    "strike": ("strike*", "walkout*", "забастов*", "ереуіл*"),
    "sanctions": ("sanction*", "санкци*", "санкция*"),
    "talks": ("talks", "visit*", "summit*", "meeting*", "met", "визит*", "встреч*", "переговор*", "саммит*",
              "сапар*", "кездес*", "келіссөз*", "саммит"),
    "law": ("law*", "bill", "amendment*", "decree*", "signed", "sign*", "закон*", "поправк*", "указ*",
            "подписал*", "заң*", "түзету*", "жарлық*", "қол қой*", "қол қойды"),
    "weather": ("snow*", "storm*", "blizzard*", "frost*", "heatwave", "heat", "снег*", "снеж*", "бур*",
                "метел*", "мороз*", "жар", "жара", "буран*", "қар", "қарлы", "боран*", "аяз*", "ыстық*",
                "дауыл*"),
    "school": ("school*", "pupil*", "student*", "universit*", "школ*", "учени*", "студент*", "вуз*",
               "мектеп*", "оқушы*", "студент*", "университет*"),
    "health": ("hospital*", "virus*", "outbreak*", "vaccin*", "epidemic*", "measles", "flu", "больниц*",
               "вирус*", "вспышк*", "вакцин*", "эпидеми*", "корь", "грипп*", "аурухана*", "вирус*",
               "індет*", "вакцина*", "қызылша*", "тұмау*"),
    "oil": ("oil", "pipeline*", "refiner*", "нефт*", "нефтепровод*", "нпз", "мұнай*", "құбыр*"),
    "water": ("water", "drought*", "dam", "reservoir*", "вода", "воды", "воду", "водой", "засух*",
              "плотин*", "водохранилищ*", "су", "суы", "суды", "құрғақшылық*", "бөген*", "су қоймасы"),
    "attack": ("attack*", "terror*", "shooting", "shot", "gunm*", "нападен*", "напал*", "теракт*",
               "террор*", "стрельб*", "шабуыл*", "террор*", "атыс*"),
    "evacuation": ("evacuat*", "эвакуац*", "эвакуир*", "эвакуация*", "көшіріл*"),
    "mine": ("mine", "mines", "miner*", "coal", "шахт*", "горняк*", "угол", "угл*", "шахта*", "кенші*",
             "көмір*"),
    "border": ("border*", "checkpoint*", "границ*", "пограничн*", "кпп", "шекара*", "бекет*"),
    "budget": ("budget*", "gdp", "бюджет*", "ввп", "ішкі жалпы", "іжө"),
    "corruption": ("brib*", "corrupt*", "embezzl*", "взятк*", "коррупц*", "хищен*", "пара", "параны",
                   "сыбайлас*", "жемқор*"),
    "drugs": ("drug*", "narcotic*", "наркот*", "есірткі*"),
    "hostage": ("hostage*", "kidnap*", "заложник*", "похищ*", "кепіл*", "ұрла*"),
    "ban": ("ban", "bans", "banned", "prohibit*", "запрет*", "запрещ*", "тыйым*"),
    "blackout": ("blackout*", "outage*", "power cut", "electricity", "отключен*", "электроэнерг*",
                 "электричеств*", "свет", "электр*", "жарық*", "өшір*"),
    "shutdown": ("cut", "cuts", "shut*", "blocked", "block*", "closed", "closure", "suspend*", "halt*",
                 "seiz*", "отключ*", "заблокир*", "блокир*", "закры*", "приостанов*", "захват*", "прекращ*",
                 "өшір*", "бұғатта*", "жабыл*", "тоқтат*", "тоқтады", "басып ал*"),
    "restore": ("restor*", "resum*", "reopen*", "regain*", "retak*", "back", "восстанов*", "возобнов*",
                "вновь", "снова", "вернул*", "возвращ*", "қалпына", "қайта", "жаңғырт*"),
    "heating": ("heating", "boiler*", "cogeneration", "chp", "отоплен*", "котельн*", "тэц",
                "жылу*", "жылыту*", "қазандық*", "жэо"),
    # names and abbreviations that do not transliterate into each other
    "csto": ("csto", "одкб", "ұқшұ", "ұқшұ-ның"),
    "eaeu": ("eaeu", "eeu", "еаэс", "еаэо"),
    "un": ("un", "uno", "оон", "бұұ"),
    "eu": ("eu", "ес", "ео"),
    "sco": ("sco", "шос", "шыұ"),
    "cis": ("cis", "снг", "тмд"),
    "nato": ("nato", "нато"),
    "imf": ("imf", "мвф", "хвқ"),
    "knb": ("knb", "кнб", "ұқк"),
    "interior-ministry": ("mvd", "мвд", "іім", "interior ministry", "ішкі істер"),
    "russia": ("russia", "russian", "russians", "россия", "россии", "россию", "российск*", "ресей*",
               "moscow", "москва", "москве", "москвы", "мәскеу*"),
    "china": ("china", "chinese", "beijing", "китай", "китая", "китае", "китайск*", "пекин*", "қытай*",
              "бейжің*"),
    "usa": ("us", "usa", "american*", "washington", "сша", "американ*", "вашингтон*", "ақш", "америка*"),
    "kyrgyzstan": ("kyrgyz*", "киргиз*", "кыргыз*", "қырғыз*", "bishkek", "бишкек*", "бішкек*"),
    "uzbekistan": ("uzbek*", "узбек*", "өзбек*", "tashkent", "ташкент*"),
    "tajikistan": ("tajik*", "таджик*", "тәжік*", "dushanbe", "душанбе"),
    "turkey": ("turkey", "turkish", "ankara", "турци*", "турецк*", "анкар*", "түркия*", "түрік*"),
    "germany": ("germany", "german", "berlin", "германи*", "немецк*", "берлин*", "германия*", "неміс*"),
    "kazakhstan": ("kazakhstan*", "kazakh", "kazakhs", "казахстан*", "казах*", "қазақстан*", "қазақ*"),
    "akorda": ("akorda", "акорда*", "ақорда*"),
    "parliament": ("parliament*", "mazhilis", "majilis", "senate", "lawmaker*", "deput*", "парламент*",
                   "мажилис*", "сенат*", "депутат*", "мәжіліс*", "сенат*", "депутат*"),
    "president": ("president*", "президент*", "президенті*"),
    "government": ("government*", "cabinet", "minist*", "правительств*", "кабмин*", "министр*",
                   "министерств*", "үкімет*", "министр*", "министрлі*"),
    "police": ("police*", "policem*", "officer*", "полиц*", "полицей*", "силовик*", "полиция*",
               "құқық қорғау*"),
}

# month names: en / ru / kk -> month number
_MONTH_NAMES = (
    "january jan январ* қаңтар*", "february feb феврал* ақпан*", "march mar март* наурыз*",
    "april apr апрел* сәуір*", "may мая май мамыр*", "june jun июн* маусым*", "july jul июл* шілде*",
    "august aug август* тамыз*", "september sep sept сентябр* қыркүйек*",
    "october oct октябр* қазан қазанда қазанның", "november nov ноябр* қараша*",
    "december dec декабр* желтоқсан*",
)

_SCALES = {"thousand": 1e3, "thousands": 1e3, "тыс": 1e3, "тысяч": 1e3, "тысячи": 1e3, "тысяча": 1e3,
           "мың": 1e3, "million": 1e6, "millions": 1e6, "млн": 1e6, "миллион": 1e6, "миллиона": 1e6,
           "миллионов": 1e6, "billion": 1e9, "млрд": 1e9, "миллиард": 1e9, "миллиарда": 1e9,
           "миллиардов": 1e9}


def _compile_lexicon(table: dict[str, tuple[str, ...]]):
    exact: dict[str, str] = {}
    prefixes: dict[str, list[tuple[str, str]]] = {}
    phrases: dict[str, list[tuple[str, str]]] = {}  # first word -> (prefix of the second, concept)
    for concept, words in table.items():
        for w in words:
            w = w.lower().replace("ё", "е")
            if " " in w:
                first, second = w.rstrip("*").split(maxsplit=1)
                if " " in second:
                    raise ValueError(f"stories: lexicon phrases have two words: {w!r}")
                phrases.setdefault(first, []).append((second, concept))
            elif w.endswith("*"):
                p = w[:-1]
                prefixes.setdefault(p[:2], []).append((p, concept))
            else:
                exact.setdefault(w, concept)
    return exact, prefixes, phrases


_LEX_EXACT, _LEX_PREFIX, _LEX_PHRASES = _compile_lexicon(LEXICON)
_MONTH_EXACT, _MONTH_PREFIX, _ = _compile_lexicon({str(n): tuple(forms.split())
                                                    for n, forms in enumerate(_MONTH_NAMES, start=1)})


@lru_cache(maxsize=language.WORD_CACHE)
def _lexicon_concept(word: str) -> str | None:
    """The lexicon concept of one lower-case word, or None."""
    hit = _LEX_EXACT.get(word)
    if hit:
        return hit
    best = None
    for p, concept in _LEX_PREFIX.get(word[:2], ()):
        if word.startswith(p) and (best is None or len(p) > len(best[0])):
            best = (p, concept)
    return best[1] if best else None


@lru_cache(maxsize=10_000)
def _month(word: str) -> int | None:
    hit = _MONTH_EXACT.get(word)
    if hit:
        return int(hit)
    for p, n in _MONTH_PREFIX.get(word[:2], ()):
        if word.startswith(p):
            return int(n)
    return None


# -- fingerprints -------------------------------------------------------------------


@dataclass(frozen=True)
class Fingerprint:
    """What one item is compared by. Keys are strings; see the module docstring.

    Picklable (workers compute fingerprints in other processes). ``bands``, the
    item's MinHash LSH band keys, and ``packed``, its form in the store, are
    filled by :func:`fingerprint` (so that a worker computes them too); a
    fingerprint read back from the store has neither, and :func:`index_keys`
    and :func:`_pack` compute them.
    """

    lang: str
    tokens: frozenset[str]  # content tokens in the item's language
    en_tokens: frozenset[str]  # English tokens: its own (en) or its translation's; may be empty
    anchors: frozenset[str]  # "n:" names, "#:" numbers, "y:" years, "h:" clock times, "d:" dates,
    #                          "c:" concepts, "e:" lexicon
    translated: bool = False  # en_tokens come from a translation
    bands: tuple[int, ...] | None = field(default=None, compare=False, repr=False)
    packed: str | None = field(default=None, compare=False, repr=False)  # _pack(), when computed

    events: frozenset[str] = field(init=False, compare=False, repr=False)  # "e:" anchors naming events
    numbers: frozenset[str] = field(init=False, compare=False, repr=False)  # "#:" anchors
    kinds: frozenset[str] = field(init=False, compare=False, repr=False)  # events that are kinds of event
    changes: frozenset[str] = field(init=False, compare=False, repr=False)  # events that are changes

    def __post_init__(self):
        # (empty sets are the one shared empty frozenset: thousands of fingerprints stay cached)
        events = frozenset(a for a in self.anchors if a.startswith("e:") and a[2:] in _EVENT_CONCEPTS) or _EMPTY
        changes = (events & _CHANGES or _EMPTY) if events else _EMPTY
        object.__setattr__(self, "events", events)
        object.__setattr__(self, "numbers", frozenset(a for a in self.anchors if a.startswith("#:")) or _EMPTY)
        object.__setattr__(self, "kinds", (events - _CHANGES or _EMPTY) if changes else events)
        object.__setattr__(self, "changes", changes)


_EMPTY: frozenset = frozenset()
_EVENT_CONCEPTS = frozenset(list(LEXICON)[:list(LEXICON).index("csto")])
_CHANGES = frozenset({"e:shutdown", "e:restore"})  # not kinds of event: what happened to one
_WORD = re.compile(r"[^\W_]+(?:-[^\W_]+)*")
_NUMBER = re.compile(r"\d+(?:[.,\u00a0\u202f ]\d+)*")
_CLOCK = re.compile(r"\b([01]?\d|2[0-3])[:.]([0-5]\d)\b(?:\s*([ap])\.?m\b)?|\b(1[0-2]|[1-9])\s*([ap])\.?m\b",
                    re.IGNORECASE)
_TITLE_CASE_SHARE = 0.6
_CLOCK_HINT = re.compile(r"\d(?:[:.]\d|\s*[ap]\.?m)", re.IGNORECASE)  # all a clock time can start with
_NUMBER_SEP = re.compile(r"[.,\u00a0\u202f ]")
_SCALE_WORD = re.compile(r"[^\W\d_]+")


def _is_stop(word: str, lang: str) -> bool:
    return word in STOPWORDS.get(lang, ()) or word in STOPWORDS["en"] and lang != "en" and word.isascii()


def _numbers(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, normalised value, kind) of every number; kind "#", "y" (a year) or "h" (a clock time)."""
    out = []
    clocks = []
    for m in _CLOCK.finditer(text) if _CLOCK_HINT.search(text) else ():
        hour = int(m.group(1) or m.group(4))
        minute = int(m.group(2) or 0)
        half = (m.group(3) or m.group(5) or "").lower()
        if half == "p" and hour < 12:
            hour += 12
        elif half == "a" and hour == 12:
            hour = 0
        clocks.append((m.start(), m.end()))
        out.append((m.start(), m.end(), f"{hour:02d}:{minute:02d}", "h"))
    for m in _NUMBER.finditer(text):
        if clocks and any(s <= m.start() < e for s, e in clocks):
            continue
        raw = m.group(0)
        parts = _NUMBER_SEP.split(raw)
        if len(parts) > 1 and all(len(p) == 3 for p in parts[1:]) and not (len(parts) == 2 and "," in raw
                                                                           and raw.count(",") == 1
                                                                           and len(parts[0]) > 3):
            value = float("".join(parts))  # thousands separators: 1,500 / 1 500 / 1.500
        elif len(parts) == 2:
            value = float(f"{parts[0]}.{parts[1]}")  # a decimal: 2.5 / 2,5
        else:
            # "12 15" (two numbers side by side) or something odd: keep the first one
            value = float(parts[0])
            raw = parts[0]
        after = text[m.end():m.end() + 12].lower().lstrip()
        scale_word = _SCALE_WORD.match(after)
        if scale_word and scale_word.group(0) in _SCALES:
            value *= _SCALES[scale_word.group(0)]
        kind = "y" if value.is_integer() and 1900 <= value <= 2100 and len(raw) == 4 else "#"
        norm = str(int(value)) if value.is_integer() else f"{value:g}"
        out.append((m.start(), m.end(), norm, kind))
    return out


@lru_cache(maxsize=language.WORD_CACHE)
def _name_anchor(word: str, lang: str) -> str:
    key = language.name_key(word, lang if lang in ("ru", "kk") else None)
    return "n:" + key[:NAME_KEY_CHARS]


def _segments(title: str, summary: str) -> list[str]:
    return [s for s in (title, summary) if s and s.strip()]


def _title_case(text: str) -> bool:
    words = [w for w in _WORD.findall(text) if len(w) >= 4 and w[0].isalpha()]
    if len(words) < 3:
        return False
    return sum(1 for w in words if w[0].isupper()) / len(words) >= _TITLE_CASE_SHARE


def _word_info(word: str, lang: str) -> tuple[str | None, int | None, tuple[str, ...], tuple[str, ...], str]:
    """(lexicon concept, month number, content tokens, name anchors if it is a name, lower case) of a word."""
    low = word.lower().replace("ё", "е")
    concept = _lexicon_concept(low)
    if concept is None and "-" in low:
        concept = _lexicon_concept(low.split("-")[0])
    stop = _is_stop(low, lang)
    month = _month(low)
    toks: tuple[str, ...] = ()
    if not stop and len(low) > 1:
        toks = tuple(language.word_token(part, lang) for part in low.split("-")
                     if part and not _is_stop(part, lang))
    names: tuple[str, ...] = ()
    if not (stop or concept or month) and word[0].isupper():
        names = tuple(_name_anchor(part, lang) for part in word.split("-") if len(part) >= 2)
    return concept, month, toks, names, low


# what :func:`fingerprint` needs of a word, per language: (the "e:" anchor of its lexicon
# concept or None, month number or None, content tokens, name anchors, lower case, the
# lexicon phrases it starts or None, whether it is plain: none of those but tokens); a
# plain dict is the cheapest cache to consult
_WORDS: dict[str, dict[str, tuple]] = {lang: {} for lang in LANGS}
_WORDS_MAX = 20_000  # per language; the cache starts afresh when full


def _word_entry(word: str, lang: str) -> tuple:
    concept, month, toks, names, low = _word_info(word, lang)
    phrases = _LEX_PHRASES.get(low)
    entry = ("e:" + concept if concept else None, month, toks, names, low,
             tuple((second, "e:" + c) for second, c in phrases) if phrases else None,
             not (concept or month or names or phrases))  # plain: it gives tokens only
    cache = _WORDS[lang]
    if len(cache) >= _WORDS_MAX:
        cache.clear()
    cache[word] = entry
    return entry


_SENTENCES = re.compile(r"(?<=[.!?…:;])\s+|\n+")
_DIGIT = re.compile(r"\d")


def fingerprint(title: str, summary: str, lang: str, concepts: Iterable[str] = (),
                translation: str | None = None) -> Fingerprint:
    """The fingerprint of one item, with its LSH band keys (pure; cached word by word)."""
    return _fingerprint(title, summary, lang, concepts, translation, True)


def _fingerprint(title: str, summary: str, lang: str, concepts: Iterable[str], translation: str | None,
                 with_bands: bool) -> Fingerprint:
    if lang not in LANGS:
        raise ValueError(f"stories: lang must be one of {', '.join(LANGS)}, not {lang!r}")
    tokens: list[str] = []
    anchors: set[str] = {"c:" + c for c in concepts if c}
    date_days: set[str] = set()
    words = _WORDS[lang]
    summary_caps = None
    for seg_index, seg in enumerate(_segments(title, summary)):
        title_case = seg_index == 0 and lang == "en" and _title_case(seg)
        if title_case and summary_caps is None:
            # in a Title Case English headline every word is capitalised: there a word counts
            # as a name when the summary writes it capitalised too (or when there is no summary)
            summary_caps = {w.lower() for w in _WORD.findall(summary or "") if w[:1].isupper()}
        for sentence in _SENTENCES.split(seg):
            prev_phrases = prev_day = pending_month = None
            for i, w in enumerate(_WORD.findall(sentence)):
                if w[0].isdigit():
                    day = w if w.isdigit() and 1 <= int(w) <= 31 else None
                    if day and pending_month:
                        anchors.add(f"d:{pending_month:02d}-{int(day):02d}")  # January 5
                        date_days.add(day)
                    prev_phrases, prev_day, pending_month = None, day, None
                    continue
                entry = words.get(w) or _word_entry(w, lang)
                if entry[6]:  # most words: tokens only
                    if prev_phrases:
                        low = entry[4]
                        for second, phrase_event in prev_phrases:
                            if low.startswith(second):
                                anchors.add(phrase_event)
                    tokens += entry[2]
                    prev_phrases = prev_day = pending_month = None
                    continue
                event, month, toks, names, low, phrases, _plain = entry
                if month:
                    if prev_day:
                        anchors.add(f"d:{month:02d}-{int(prev_day):02d}")  # 5 января, 5 қаңтарда
                        date_days.add(prev_day)
                    pending_month = None if prev_day else month
                else:
                    pending_month = None
                prev_day = None
                if event:
                    anchors.add(event)
                if toks:
                    tokens += toks
                if prev_phrases:
                    for second, phrase_event in prev_phrases:
                        if low.startswith(second):
                            anchors.add(phrase_event)
                prev_phrases = phrases
                # names: capitalised words (not a sentence's first word, nor in a Title Case
                # English headline unless the summary capitalises them too) and acronyms
                if names and ((len(w) >= 2 and w.isupper())
                              or (i and (not title_case or not summary_caps or low in summary_caps))
                              or (not i and lang != "en" and len(w) >= 4)):
                    anchors.update(names)
        if _DIGIT.search(seg):
            for _start, _end, norm, kind in _numbers(seg):
                if not (kind == "#" and norm in date_days):
                    anchors.add(f"{kind}:{norm}")
    own = frozenset(tokens)
    en_tokens: frozenset[str] = frozenset()
    translated = False
    if lang == "en":
        en_tokens = own
    elif translation and translation.strip():
        tfp = _fingerprint(translation, "", "en", (), None, False)
        en_tokens = tfp.tokens
        translated = True
        # a translation also carries numbers, dates and event words in English
        anchors |= {a for a in tfp.anchors if a[0] in "#ydeh"}
    if not with_bands:
        return Fingerprint(lang=lang, tokens=own, en_tokens=en_tokens, anchors=frozenset(anchors),
                           translated=translated)
    fp = Fingerprint(lang=lang, tokens=own, en_tokens=en_tokens, anchors=frozenset(anchors),
                     translated=translated, bands=_bands(lang, own, en_tokens))
    object.__setattr__(fp, "packed", _pack(fp))
    return fp


# -- similarity ---------------------------------------------------------------------


class Weights:
    """Inverse document frequencies of keys over the items of the window (in memory).

    Counts are kept per day of item time; days older than the window are
    dropped as the newest time moves on. Keys are anchors, and tokens in a
    language space ("en:", "ru:", "kk:" before the token when asked one by one).
    """

    def __init__(self, window_hours: float):
        self.window_days = max(1, math.ceil(window_hours / 24)) + 1
        # day -> {table: {key: count}}: what that day added, taken off again when the day leaves the
        # window (counts, not the items' key sets, so memory follows the vocabulary, not the items)
        self.days: dict[int, dict[str, dict[str, int]]] = {}
        self.day_items: Counter = Counter()
        # "" -> anchor counts; "en:", "ru:", "kk:" -> token counts of that language
        self.counts: dict[str, dict[str, int]] = {"": {}, **{lang + ":": {} for lang in LANGS}}
        self.items = 0
        self.newest_day: int | None = None
        self._log_n = math.log(5)

    def add(self, fp: Fingerprint | _Candidate, day: int) -> None:
        """Count an item's keys (its anchors, its tokens and its English tokens) on ``day``."""
        if self.newest_day is not None and day < self.newest_day - self.window_days:
            return  # older than anything the window still counts
        entry = (fp.anchors, fp.lang, fp.tokens, fp.en_tokens if fp.lang != "en" else ())
        day_counts = self.days.get(day)
        if day_counts is None:
            day_counts = self.days[day] = {name: {} for name in self.counts}
        self._count(entry, 1, day_counts)
        self.day_items[day] += 1
        self.items += 1
        if self.newest_day is None or day > self.newest_day:
            self.newest_day = day
            old_days = [d for d in self.days if d < day - self.window_days]
            for old in old_days:
                for name, dropped in self.days.pop(old).items():
                    table = self.counts[name]
                    for k, n in dropped.items():
                        table[k] -= n
                self.items -= self.day_items.pop(old)
            if old_days:
                for counts in self.counts.values():
                    for k in [k for k, v in counts.items() if v <= 0]:
                        del counts[k]
        self._log_n = math.log(self.items + 5)

    def _count(self, entry: tuple, step: int, day_counts: dict[str, dict[str, int]]) -> None:
        anchors, lang, tokens, en_tokens = entry
        counts = self.counts
        for name, keys in (("", anchors), (lang + ":", tokens), ("en:", en_tokens)):
            table, day_table = counts[name], day_counts[name]
            get, day_get = table.get, day_table.get
            for k in keys:
                table[k] = get(k, 0) + step
                day_table[k] = day_get(k, 0) + step

    def df(self, key: str) -> int:
        """In how many items of the window a key occurs."""
        table = self.counts.get(key[:3])
        return table.get(key[3:], 0) if table is not None else self.counts[""].get(key, 0)

    def anchors(self, keys: Iterable[str]) -> dict[str, float]:
        """{anchor: its weight} (what ``self(anchor)`` gives), in one loop."""
        get, log_n, logs = self.counts[""].get, self._log_n, _LOG1
        special, base = _KEY_WEIGHT.get, _BASE_WEIGHT.get
        out = {}
        for k in keys:
            df = get(k, 0)
            idf = log_n - (logs[df] if df < 4096 else math.log(df + 1))
            out[k] = (special(k) or base(k[:2], 1.0)) * (idf if idf > 0.1 else 0.1)
        return out

    def __call__(self, key: str) -> float:
        df = self.df(key)
        idf = self._log_n - (_LOG1[df] if df < 4096 else math.log(df + 1))
        base = _KEY_WEIGHT.get(key) or _BASE_WEIGHT.get(key[:2], 1.0)
        return base * (idf if idf > 0.1 else 0.1)

    def many(self, keys: Iterable[str], prefix: str = "") -> dict[str, float]:
        """{key: weight of prefix + key} for plain keys (tokens: base weight 1), in one loop."""
        table = self.counts.get(prefix)
        if table is None:  # not one language's tokens: key by key
            table = {k: self.df(prefix + k) for k in keys}
        get, log_n, logs = table.get, self._log_n, _LOG1
        out = {}
        for k in keys:
            df = get(k, 0)
            idf = log_n - (logs[df] if df < 4096 else math.log(df + 1))
            out[k] = idf if idf > 0.1 else 0.1
        return out

    @property
    def version(self) -> int:
        """Changes when the weights may have moved enough to recompute cached norms: when the
        window's item count has moved by about a third."""
        return int(math.log(self.items + 5) * 3)


_LOG1 = [math.log(n + 1) for n in range(4096)]
_BASE_WEIGHT = {"y:": 0.3, "c:": 1.0, "e:": 0.6, "n:": 1.0, "#:": 1.2, "d:": 1.0, "h:": 0.8}
# lexicon names count like names; generic actors and changes count for little
_KEY_WEIGHT = {"e:" + k: 1.0 for k in LEXICON if k not in _EVENT_CONCEPTS}
_KEY_WEIGHT.update({"e:" + k: 0.3 for k in ("kazakhstan", "president", "government", "police", "parliament",
                                            "shutdown", "restore")})


def _norms(fp: Fingerprint, w) -> tuple:
    """The weight of each key of a fingerprint and the totals:
    (anchor weights, their sum, token weights, their sum, English token weights, their sum)."""
    wa = w.anchors(fp.anchors) if isinstance(w, Weights) else {k: w(k) for k in fp.anchors}
    many = getattr(w, "many", None)
    if many is not None:
        wt = many(fp.tokens, fp.lang + ":")
        we = wt if fp.lang == "en" else many(fp.en_tokens, "en:")
    else:  # any callable key -> weight
        wt = {k: w(fp.lang + ":" + k) for k in fp.tokens}
        we = wt if fp.lang == "en" else {k: w("en:" + k) for k in fp.en_tokens}
    return wa, sum(wa.values()), wt, sum(wt.values()), we, sum(we.values())


def _sums(norms: tuple) -> tuple:
    """Only the totals of :func:`_norms` (what a candidate needs; the weights are the item's)."""
    return None, norms[1], None, norms[3], None, norms[5]


def _totals(fp: Fingerprint, w: Weights) -> tuple:
    """:func:`_sums` of :func:`_norms` without building the weight tables."""
    sa = sum(w.anchors(fp.anchors).values())
    st_ = sum(w.many(fp.tokens, fp.lang + ":").values())
    se = st_ if fp.lang == "en" else sum(w.many(fp.en_tokens, "en:").values())
    return None, sa, None, st_, None, se


def _cosine(a: frozenset[str], b: frozenset[str], sa: float, sb: float, weights: dict) -> tuple[float, int]:
    """(weighted cosine of two key sets given their total weights, shared keys); ``weights``
    holds the weight of every key of ``a``."""
    shared = a & b
    if not shared or sa <= 0 or sb <= 0:
        return 0.0, 0
    return sum([weights[k] for k in shared]) / math.sqrt(sa * sb), len(shared)


def time_factor(hours_apart: float) -> float:
    """1 within :data:`TIME_GRACE_HOURS`, then falling slowly (half at two days more)."""
    gap = abs(hours_apart) - TIME_GRACE_HOURS
    return 1.0 if gap <= 0 else 1.0 / (1.0 + gap / TIME_HALF_HOURS)


def similarity(a: Fingerprint, b: Fingerprint, w=None) -> float:
    """How surely two items report the same event, 0..1 (see the module docstring)."""
    w = w or (lambda key: 1.0)
    return _score(a, _norms(a, w), b, _norms(b, w), w)


def _score(a: Fingerprint, na, b: Fingerprint, nb, w=None) -> float:
    return _scorer(a, na)(b, nb)


def _scorer(a: Fingerprint, na: tuple):
    """``score(b, nb)``: the score of ``a`` against ``b``, with what belongs to ``a`` looked up
    once (assign scores one item against a dozen candidates); ``na`` holds ``a``'s weights
    (:func:`_norms`), ``nb`` at least ``b``'s totals. The cosines of :func:`_cosine`, written out."""
    a_anchors, a_weights, a_sum = a.anchors, na[0], na[1]
    a_tokens, t_weights, t_sum = a.tokens, na[2], na[3]
    a_en, e_weights, e_sum = a.en_tokens, na[4], na[5]
    lang, kinds, changes, numbers = a.lang, a.kinds, a.changes, a.numbers
    sqrt = math.sqrt

    def score(b: Fingerprint, nb: tuple) -> float:
        shared = a_anchors.intersection(b.anchors)  # b: a _Candidate (tuples) or a Fingerprint
        if shared and a_sum > 0 and nb[1] > 0:
            anchor = sum([a_weights[k] for k in shared]) / sqrt(a_sum * nb[1])
        else:
            anchor = 0.0
        if lang == b.lang:
            common = a_tokens.intersection(b.tokens)
            if common and t_sum > 0 and nb[3] > 0:
                text = sum([t_weights[k] for k in common]) / sqrt(t_sum * nb[3])
            else:
                text = 0.0
            value = max(text, (text + anchor) / 2)
        else:
            value = anchor if shared and len(shared) >= MIN_SHARED_ANCHORS else 0.0
            if a_en and b.en_tokens:
                common = a_en.intersection(b.en_tokens)
                if common and e_sum > 0 and nb[5] > 0:
                    text = sum([e_weights[k] for k in common]) / sqrt(e_sum * nb[5])
                else:
                    text = 0.0
                value = max(value, (text + anchor) / 2, text * 0.9)
        other = b.kinds
        if kinds and other:
            # the share of the smaller set of event kinds that the other one names too
            agree = len(kinds & other) / min(len(kinds), len(other))
            value *= EVENT_CONFLICT + (1 - EVENT_CONFLICT) * agree
        other = b.changes
        if changes and other and not changes & other:
            value *= EVENT_CONFLICT  # one says something stopped, the other that it came back
        other = b.numbers
        if numbers and other and not numbers & other:
            value *= NUMBER_CONFLICT
        return value

    return score


# -- MinHash LSH --------------------------------------------------------------------

# one random 60-bit mask per "permutation": h XOR mask permutes the hash space
_MASKS = [int.from_bytes(hashlib.blake2b(f"newsbot-minhash-{i}".encode(), digest_size=8).digest(), "big")
          & 0xFFFFFFFFFFFFFFF for i in range(MINHASH_PERMS)]


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                          "big", signed=True)


_h64 = lru_cache(maxsize=language.WORD_CACHE)(_hash64)  # anchors (index keys)


@lru_cache(maxsize=language.WORD_CACHE)
def _token_hash(token: str) -> int:
    """A token's 60-bit hash, for MinHash."""
    return _hash64(token) & 0xFFFFFFFFFFFFFFF


def minhash(tokens: Iterable[str]) -> list[int]:
    """MinHash signature: for each mask, the least (token hash XOR mask)."""
    hs = list(map(_token_hash, tokens))
    if not hs:
        return []
    return [min(map(xor, hs, repeat(m))) for m in _MASKS]


_SPACES = {"en": 1, "ru": 2, "kk": 3}
_M64 = 0xFFFFFFFFFFFFFFFF


# the starting value of each band's hash, per language space
_BAND_SEEDS = {space: [(n * 0x9E3779B97F4A7C15 + (i + 1) * 0xBF58476D1CE4E5B9) & _M64
                       for i in range(0, MINHASH_PERMS, LSH_ROWS)] for space, n in _SPACES.items()}


def band_keys(space: str, tokens: frozenset[str]) -> list[int]:
    """LSH band keys (signed 64-bit) of a token set; none for sets too small to be worth it."""
    if len(tokens) < 3:
        return []
    sig = minhash(tokens)
    out = []
    for b, x in enumerate(_BAND_SEEDS[space]):
        for v in sig[b * LSH_ROWS:(b + 1) * LSH_ROWS]:
            x = ((x ^ v) * 0x94D049BB133111EB) & _M64
        x ^= x >> 31
        out.append(x - (1 << 64) if x >= 1 << 63 else x)
    return out


def _bands(lang: str, tokens: frozenset[str], en_tokens: frozenset[str]) -> tuple[int, ...]:
    """The LSH band keys of an item: of its own tokens, and of its English tokens (across languages)."""
    bands = band_keys(lang, tokens)
    if lang != "en" and en_tokens:
        bands += band_keys("en", en_tokens)
    return tuple(bands)


def index_keys(fp: Fingerprint) -> tuple[list[str], list[int]]:
    """(anchor keys, LSH band keys) an item is indexed and looked up under (pure: a worker
    process may compute them; :func:`fingerprint` already puts the band keys in ``fp.bands``)."""
    # sorted: the same order in every process (a set's order follows the process's string hashes)
    anchors = sorted([a for a in fp.anchors if not a.startswith("y:")])
    bands = fp.bands if fp.bands is not None else _bands(fp.lang, fp.tokens, fp.en_tokens)
    return anchors, list(bands)


# -- snapshots and the alert rule -----------------------------------------------------


@dataclass(frozen=True)
class StorySnapshot:
    """What a reader was alerted of: a story's languages and distinct sources then."""

    langs: frozenset[str]
    sources: int
    items: int = 0


def grew_materially(old: StorySnapshot | None = None, new: StorySnapshot | None = None, *,
                    old_langs: Iterable[str] | None = None, old_sources: int | None = None,
                    new_langs: Iterable[str] | None = None, new_sources: int | None = None) -> bool:
    """True when a story deserves one update alert after ``old``.

    The rule: a language the story was not reported in before, or at least
    ``max(2, ceil(old sources / 2))`` more distinct sources. Pass two
    snapshots, or the four keyword values.
    """
    if old is None:
        if old_langs is None or old_sources is None:
            raise ValueError("grew_materially: pass old and new snapshots, or old_langs/old_sources")
        old = StorySnapshot(frozenset(old_langs), int(old_sources))
    if new is None:
        if new_langs is None or new_sources is None:
            raise ValueError("grew_materially: pass old and new snapshots, or new_langs/new_sources")
        new = StorySnapshot(frozenset(new_langs), int(new_sources))
    if set(new.langs) - set(old.langs):
        return True
    return new.sources - old.sources >= max(2, math.ceil(old.sources / 2))


# -- reading a story ------------------------------------------------------------------


@dataclass
class Headline:
    text: str
    lang: str  # the language of the text
    source_lang: str  # the language of the report it comes from
    translated: bool
    item_id: int | None = None


@dataclass
class StoryItem:
    id: int
    feed: str
    lang: str
    title: str
    url: str | None
    published: datetime | None
    fetched: datetime


@dataclass
class Story:
    id: int
    items: list[StoryItem]
    sources: list[str]  # feed names, first reporter first
    langs: list[str]
    first_seen: datetime
    last_seen: datetime
    headlines: dict[str, Headline]  # per reader language, where one is known
    growth: int  # items fetched in the last hour

    def headline(self, lang: str) -> Headline:
        """The best headline for a reader of ``lang``: a source in that language, else a
        translation into it, else the first report's own title."""
        if lang in self.headlines:
            return self.headlines[lang]
        first = self.items[0] if self.items else None
        if first is None:
            return Headline(text="", lang=lang, source_lang=lang, translated=False)
        return Headline(text=first.title, lang=first.lang, source_lang=first.lang, translated=False,
                        item_id=first.id)

    def snapshot(self) -> StorySnapshot:
        return StorySnapshot(frozenset(self.langs), len(self.sources), len(self.items))


@dataclass
class Assignment:
    story_id: int
    is_new: bool
    size: int  # items in the story, this one included
    score: float = 1.0  # similarity to the story it joined (1.0 for a new story)


# -- the index -------------------------------------------------------------------------


def _epoch(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp())


def item_time(item: Item) -> datetime:
    """When an item happened, for the window: published, unless missing or after it was fetched."""
    if item.published is not None and item.published <= item.fetched + timedelta(hours=1):
        return item.published
    return item.fetched


class KeyFilter:
    """Which index keys each day may hold: a Bloom filter (one bit per key) per day, in memory.

    Most of the (day, key) pairs an item looks up hold nothing (an LSH band
    meets another only for a near-duplicate); the lookup skips the pairs that
    certainly hold nothing. A false positive costs one read of the index, never
    a candidate. Days before :attr:`trusted_from` and days in :attr:`unknown`
    (index rows that did not pass through here) are always read.
    """

    BITS_PER_KEY = 16  # about 6% false positives at capacity
    MIN_BITS = 1 << 15  # (at least 8: a key's low three bits pick the bit in its byte)

    def __init__(self):
        self.days: dict[int, list[list]] = {}  # day -> segments [mask, bits, keys it still takes]
        self.sizes: dict[int, int] = {}  # day -> keys added
        self.trusted_from: float = math.inf  # nothing is trusted until the index is loaded
        self.unknown: set[int] = set()

    def add(self, day: int, keys: list[int]) -> None:
        if day < self.trusted_from:
            return  # read from the index anyway
        segments = self.days.get(day)
        if segments is None:
            segments = self.days[day] = []
            self.sizes[day] = 0
        n = len(keys)
        if not segments or segments[-1][2] < n:
            # a new segment: twice the last one, or sized for the busiest day held
            want = max(2 * (segments[-1][0] + 1) if segments else self.BITS_PER_KEY * max(self.sizes.values()),
                       self.BITS_PER_KEY * n)
            nbits = self.MIN_BITS
            while nbits < want:
                nbits *= 2
            segments.append([nbits - 1, bytearray(nbits >> 3), nbits // self.BITS_PER_KEY])
        mask, bits, _room = segment = segments[-1]
        for k in keys:
            bits[(k & mask) >> 3] |= 1 << (k & 7)
        segment[2] -= n
        self.sizes[day] += n

    def pairs(self, keys: list[int], days: Iterable[int]) -> list[tuple[int, int]]:
        """The (day, key) pairs, key by key, that may hold index rows (:meth:`may_hold` of each)."""
        by_day = []  # (day, the keys it may hold, or None: any)
        for d in days:
            if d < self.trusted_from or d in self.unknown:
                by_day.append((d, None))
                continue
            segments = self.days.get(d)
            if not segments:
                continue
            if len(segments) == 1:
                mask, bits, _room = segments[0]
                held = {k for k in keys if bits[(k & mask) >> 3] >> (k & 7) & 1}
            else:
                held = {k for k in keys if any(bits[(k & mask) >> 3] >> (k & 7) & 1
                                               for mask, bits, _room in segments)}
            if held:
                by_day.append((d, held))
        if not by_day:
            return []
        return [(d, k) for k in keys for d, held in by_day if held is None or k in held]

    def may_hold(self, day: int, key: int) -> bool:
        if day < self.trusted_from or day in self.unknown:
            return True
        return any(bits[(key & mask) >> 3] >> (key & 7) & 1 for mask, bits, _room in self.days.get(day, ()))

    def forget_before(self, day: int) -> None:
        """Drop the days before ``day`` (they are read from the index from now on)."""
        for d in [d for d in self.days if d < day]:
            del self.days[d]
            del self.sizes[d]
        self.unknown = {d for d in self.unknown if d >= day}
        self.trusted_from = max(self.trusted_from, day)

    def memory(self) -> int:
        """Bytes held by the bit arrays."""
        return sum(len(seg[1]) for segments in self.days.values() for seg in segments)


class StoryIndex:
    """Assigns items to stories through an index in the store (see the module docstring).

    Keep one per process and call it from the store's thread. The key
    frequencies are held in memory and rebuilt from the index on first use.
    """

    def __init__(self, store, window_hours: float = 72, *, cache_size: int = 20_000, key_filter: bool = True):
        if not window_hours or window_hours <= 0:
            raise ValueError(f"stories: window_hours must be positive, not {window_hours!r}")
        self.store = store
        self.window = timedelta(hours=window_hours)
        self.window_s = int(self.window.total_seconds())
        self.weights = Weights(window_hours)
        self._cache: OrderedDict[int, tuple] = OrderedDict()
        self._cache_size = cache_size
        self._loaded = False
        self._assigned = 0
        self._last_prune = 0
        self._newest_t = 0  # the latest item time indexed (nothing lies beyond it)
        self._feed_names: dict[int, str] = {}
        self.filter = KeyFilter()
        self._use_filter = key_filter  # False: every (day, key) pair is read (for comparison)
        self._window_days = math.ceil(self.window_s / 86400) + 1  # days of filter kept behind the newest
        self._data_version: int | None = None  # of the store, when the filter was last in step with it
        self._synced_id = 0  # index rows with a higher item id may be another connection's
        self._since_sync = 0
        self._pruning: tuple[int, int, int, int] | None = None  # where prune() goes on

    # -- public -------------------------------------------------------------

    def assign(self, item: Item, concepts: set[str] | Iterable[str] = (), now: datetime | None = None,
               translation: str | None = None, *, fp: Fingerprint | None = None) -> Assignment:
        """Put a stored item into a story (new or existing); writes items.story_id.

        ``fp``: the item's fingerprint when it was computed elsewhere (a worker process) with
        :func:`fingerprint` from the item's title, summary, language, ``concepts`` and
        ``translation``; it is used as given (``concepts`` are then not read; ``translation``
        still gives the story its English headline). Idempotent: an item already assigned
        keeps its story.
        """
        if item.id is None:
            raise ValueError("stories: the item has no id (store it before assigning a story)")
        if fp is not None and (not isinstance(fp, Fingerprint) or fp.lang != item.lang):
            raise ValueError(f"stories: fp must be the Fingerprint of item {item.id} (lang {item.lang!r}), "
                             f"not {fp!r:.80}")
        now = now or item.fetched
        self._load()
        self._sync()
        if item.story_id is not None:  # assigned before (this object says so): the store decides
            known = self._known(item.id)
            if known is not None:
                return known
        if fp is None:
            fp = fingerprint(item.title, item.summary, item.lang, concepts or (), translation)
        when = item_time(item)
        t = _epoch(when)
        anchors, bands = index_keys(fp)
        norms = _norms(fp, self.weights)
        best_story, best_score = self._best_story(fp, norms, anchors, bands, t)
        store = self.store
        conn = store.conn
        own_tx = not conn.in_transaction
        try:
            feed_name = self._feed_name(item.feed_id)
            size = None
            if best_story is not None:
                # claim the item row first: an item assigned meanwhile keeps its story
                if not store.claim_story_item(item.id, best_story):
                    return self._lost_claim(item, own_tx)
                size = store.add_to_story(best_story, item, when, translation, feed_name)
                if size is None:  # the story is gone (retention): start afresh
                    log.warning("story missing story=%s item=%s", best_story, item.id)
            if size is None:
                story_id = store.create_story(item, when, translation, feed_name)
                if not store.claim_story_item(item.id, story_id, force=best_story is not None):
                    store.delete_story(story_id)
                    return self._lost_claim(item, own_tx)
                size, is_new, score = 1, True, 1.0
            else:
                story_id, is_new, score = best_story, False, best_score
            keys = [*map(_h64, anchors), *bands]
            store.index_story_item(item.id, story_id, t, fp.lang, _pack(fp), keys)
            self.filter.add(t // 86400, keys)  # (a rollback leaves bits that cost a read, never a miss)
            if own_tx:
                conn.commit()
        except BaseException:
            if own_tx:
                conn.rollback()
            raise
        item.story_id = story_id
        if t > self._newest_t:
            if t // 86400 > self._newest_t // 86400:
                self.filter.forget_before((t - self.window_s) // 86400 - 1)
            self._newest_t = t
        kept = _Candidate(fp)  # its strings interned: the cache and the weights' tables share them
        self._remember(item.id, story_id, t, kept, norms, self.weights.version)
        self.weights.add(kept, t // 86400)
        self._assigned += 1
        if self._assigned - self._last_prune >= PRUNE_EVERY:
            self._last_prune = self._assigned
            # behind the newest item filed, not the clock: items of any age are filed (a feed's
            # archive, a catch-up), and the window of those still to come reaches back from theirs
            self.prune(min(_epoch(now), self._newest_t) - 2 * self.window_s, PRUNE_ITEMS)
        log.debug("story assigned item=%s story=%s new=%s score=%.2f", item.id, story_id, is_new, score)
        return Assignment(story_id=story_id, is_new=is_new, size=size, score=score)

    def forget(self) -> None:
        """Drop everything held in memory (candidates, key weights, the key filter); the next
        assignment reads it again from the store. Call after a transaction that assigned items
        was rolled back: their rows and story ids are gone, and SQLite reuses the ids."""
        self.weights = Weights(self.window_s / 3600)
        self._cache.clear()
        self.filter = KeyFilter()
        self._loaded = False
        self._newest_t = 0
        self._data_version = None
        self._synced_id = 0
        self._since_sync = 0
        self._pruning = None
        self._feed_names.clear()

    def _sync(self) -> None:
        """Keep the key filter in step with index rows other connections wrote (another
        process polling the same file): they are read once, by item id."""
        store = self.store
        version = store.data_version()
        if version == self._data_version:
            self._since_sync += 1
            if self._since_sync >= 1000:
                # nobody else wrote since the last look: every row so far passed through here
                newest_id = store.newest_indexed_id()
                if store.data_version() == version:
                    self._synced_id, self._since_sync = newest_id, 0
            return
        self._data_version = version
        self._since_sync = 0
        rows = store.indexed_items_after(self._synced_id)
        for item_id, _story_id, t, packed, keys in rows:
            if keys is None:
                anchors, bands = index_keys(_unpack(packed))
                keys = [*map(_h64, anchors), *bands]
            self.filter.add(t // 86400, keys)
            self._newest_t = max(self._newest_t, t)
            self._synced_id = max(self._synced_id, item_id)

    def _known(self, item_id: int) -> Assignment | None:
        """The assignment of an item already in a story, or None."""
        known = self.store.item_story(item_id)
        if known is None:
            return None
        return Assignment(story_id=known, is_new=False, size=self.store.story_size(known), score=1.0)

    def _lost_claim(self, item: Item, own_tx: bool) -> Assignment:
        """The item row was not free: it has a story already, or there is no such row."""
        if own_tx:
            self.store.conn.commit()
        known = self._known(item.id)
        if known is None:
            raise ValueError(f"stories: item {item.id} is not in the store (store it before assigning a story)")
        item.story_id = known.story_id
        return known

    def _feed_name(self, feed_id: int) -> str | None:
        """A feed's name, remembered for a while (a renamed feed shows its new name soon)."""
        if self._assigned % 1000 == 0:
            self._feed_names.clear()
        name = self._feed_names.get(feed_id)
        if name is None:
            feed = self.store.feed(feed_id)
            name = feed.name if feed is not None else None
            if name is not None:
                self._feed_names[feed_id] = name
        return name

    def prune(self, t_before: int, limit: int) -> int:
        """Forget (from the index only) the whole days before ``t_before``, oldest day first,
        about ``limit`` items' worth per call: a bounded slice, so that no call pays for a
        backlog. A slice is a range of the index's keys and a range of item times, each
        deleted as a range; a day smaller than that goes whole and the next day goes on.
        Returns how many items left the index."""
        store = self.store
        done = 0
        for _ in range(16):  # a call's work stays bounded however small the days
            day = store.oldest_index_day()
            if day is None or (day + 1) * 86400 > t_before:
                break  # no whole day before t_before
            if self._pruning is None or self._pruning[0] != day:
                items = store.indexed_count(day * 86400, (day + 1) * 86400)
                # (day, slices of the keys, next slice, items from this time on)
                self._pruning = (day, max(1, -(-items // max(1, limit))), 0, -(1 << 62))
            day, slices, i, t_from = self._pruning
            step = (1 << 64) // slices
            key_from = -(1 << 63) + i * step
            last = i == slices - 1
            key_to = None if last else key_from + step
            t_to = (day + 1) * 86400 if last else store.indexed_time_after(t_from, (day + 1) * 86400, limit)
            done += store.unindex_slice(day, key_from, key_to, t_from, t_to)
            self._pruning = None if last else (day, slices, i + 1, t_to)
            if not last or done >= limit:
                break
        return done

    def story(self, story_id: int, now: datetime | None = None) -> Story | None:
        """A story as the renderer needs it, or None when there is no such story.

        ``growth`` counts the items fetched in the hour before ``now`` (default: the clock).
        """
        row = self.store.story_row(story_id)
        if row is None:
            return None
        now = now or datetime.now(timezone.utc)
        members = self.store.story_members([story_id]).get(story_id, [])
        items = [StoryItem(id=m["item_id"], feed=m["feed_name"], lang=m["lang"], title=m["title"], url=m["url"],
                           published=from_iso(m["published"]), fetched=from_iso(m["fetched"])) for m in members]
        headlines = {
            lang: Headline(text=h["text"], lang=h["lang"], source_lang=h["source_lang"],
                           translated=bool(h["translated"]), item_id=h.get("item_id"))
            for lang, h in row["headlines"].items()
        }
        return Story(
            id=story_id, items=items,
            sources=list(dict.fromkeys([*row["sources"], *(i.feed for i in items)])),
            langs=list(dict.fromkeys([*row["langs"], *(i.lang for i in items)])),
            first_seen=from_iso(row["first_seen"]), last_seen=from_iso(row["last_seen"]),
            headlines=headlines, growth=self.store.story_growth(story_id, now - GROWTH_WINDOW),
        )

    # -- internals ------------------------------------------------------------

    def _load(self) -> None:
        """Rebuild the key frequencies from the index rows of the last window."""
        if self._loaded:
            return
        self._loaded = True
        store = self.store
        self._data_version = store.data_version()
        self._synced_id = store.newest_indexed_id()
        newest = store.newest_indexed_time()
        if newest is None:
            self.filter.trusted_from = -math.inf  # an empty index: every day is known
            return
        self._newest_t = max(self._newest_t, newest)
        since = newest - self.window_s - 86400
        self.filter.trusted_from = since // 86400 + 1  # whole days from here on
        by_day: dict[int, list[int]] = {}
        for item_id, story_id, t, packed, keys in store.indexed_items_since(since, with_keys=True):
            kept = _Candidate(_unpack(packed))
            day = t // 86400
            self.weights.add(kept, day)
            self._remember(item_id, story_id, t, kept)
            if keys is None:  # indexed before the keys were recorded: that day is read, not filtered
                self.filter.unknown.add(day)
            else:
                by_day.setdefault(day, []).extend(keys)
        for day, keys in by_day.items():  # a day at a time: its filter sized for it at once
            self.filter.add(day, keys)
        version = self.weights.version
        for item_id, (story_id, fp, t, _norms_then, _seen) in list(self._cache.items()):
            self._cache[item_id] = (story_id, fp, t, _totals(fp, self.weights), version)

    _index_keys = staticmethod(index_keys)

    def _best_story(self, fp: Fingerprint, mine: tuple, anchors: list[str], bands: list[int],
                    t: int) -> tuple[int | None, float]:
        wa = mine[0]  # the item's own anchor weights
        rarest = sorted(anchors, key=wa.__getitem__, reverse=True)[:MAX_QUERY_KEYS]
        query = {_h64(a): wa[a] for a in rarest}
        for b in bands:
            query[b] = BAND_WEIGHT
        if not query:
            return None, 0.0
        t_min = t - self.window_s
        t_max = min(t + self.window_s, max(t, self._newest_t))
        keys = list(query)
        days = range(t_min // 86400, t_max // 86400 + 1)
        pairs = (self.filter.pairs(keys, days) if self._use_filter else [(d, k) for k in keys for d in days])
        if not pairs:
            return None, 0.0
        # the candidates sharing the most key weight with the item (ranked by the store)
        top = [i for i, _r in self.store.story_candidates(query, t_min, t_max, POSTINGS_PER_KEY, MAX_CANDIDATES,
                                                          pairs=pairs)]
        if not top:
            return None, 0.0
        best_story, best = None, 0.0
        w = self.weights
        version = w.version
        cache = self._cache
        scorer = _scorer(fp, mine)
        for item_id, entry in self._entries(top).items():
            story_id, other, other_t, norms, seen = entry
            if seen != version:
                norms = _totals(other, w)
                cache[item_id] = (story_id, other, other_t, norms, version)
            score = scorer(other, norms)
            gap = abs(t - other_t) / 3600 - TIME_GRACE_HOURS  # time_factor, written out
            if gap > 0:
                score *= 1.0 / (1.0 + gap / TIME_HALF_HOURS)
            if score > best:
                best_story, best = story_id, score
        if best >= JOIN_THRESHOLD:
            return best_story, best
        return None, best

    def _entries(self, item_ids: list[int]) -> dict[int, tuple]:
        """Cached (story_id, fingerprint, t, norms, weights version) of indexed items."""
        out = {}
        missing = []
        for i in item_ids:
            hit = self._cache.get(i)
            if hit is None:
                missing.append(i)
            else:
                out[i] = hit
        if missing:
            for item_id, story_id, t, packed in self.store.indexed_items(missing):
                out[item_id] = self._remember(item_id, story_id, t, _Candidate(_unpack(packed)))
        return out

    def _remember(self, item_id: int, story_id: int, t: int, fp: _Candidate, norms: tuple | None = None,
                  version=None) -> tuple:
        entry = (story_id, fp, t, _sums(norms) if norms else None, version)  # None: not computed yet
        self._cache[item_id] = entry
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)  # the oldest remembered; recent items are the likely candidates
        return entry


class _Candidate:
    """What the index keeps of a filed item, to score later items against it: its keys as
    tuples of interned strings (a 30-key frozenset costs about 2 KB, the tuple about 300
    bytes, and the strings are shared by every cached item that has them). Scoring reads a
    candidate's keys only through ``frozenset.intersection`` and iteration (:func:`_scorer`,
    :func:`_totals`), which take any iterable."""

    __slots__ = ("lang", "tokens", "en_tokens", "anchors", "kinds", "changes", "numbers")

    def __init__(self, fp: Fingerprint):
        intern = sys.intern
        self.lang = fp.lang
        self.tokens = tuple(map(intern, fp.tokens))
        self.en_tokens = self.tokens if fp.lang == "en" else tuple(map(intern, fp.en_tokens))
        self.anchors = tuple(map(intern, fp.anchors))
        # (each unpickled or unpacked fingerprint has its own empty sets: share one)
        self.kinds = fp.kinds or _EMPTY
        self.changes = fp.changes or _EMPTY
        self.numbers = fp.numbers or _EMPTY

    def __repr__(self) -> str:
        return f"_Candidate({self.lang}, {len(self.tokens)} tokens, anchors={self.anchors!r:.80})"


def _pack(fp: Fingerprint) -> str:
    """A fingerprint as one line of text: lang, flags and three space-separated key lists."""
    if fp.packed is not None:
        return fp.packed
    return "\t".join((fp.lang, "t" if fp.translated else "", " ".join(sorted(fp.tokens)),
                      " ".join(sorted(fp.en_tokens)) if fp.lang != "en" else "", " ".join(sorted(fp.anchors))))


def _unpack(text: str) -> Fingerprint:
    parts = text.split("\t")
    if len(parts) != 5:
        raise ValueError(f"stories: damaged fingerprint {text[:60]!r}")
    lang, flag, tokens, en_tokens, anchors = parts
    toks = frozenset(tokens.split())
    return Fingerprint(lang=lang, tokens=toks, en_tokens=toks if lang == "en" else frozenset(en_tokens.split()),
                       anchors=frozenset(anchors.split()), translated=flag == "t")
