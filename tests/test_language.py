"""Language detection, tokens and transliteration (bot.language)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bot import language
from bot.language import detect, detect_many, name_key, to_cyrillic, to_latin, tokens

DETECT = [
    # (text, feed hint, expected)
    ("Protesters gather in central Almaty as fuel prices rise", None, "en"),
    ("Protesters gather in central Almaty as fuel prices rise", "ru", "en"),  # the hint is not the answer
    ("В Алматы прошел митинг против повышения цен на газ", None, "ru"),
    ("В Алматы прошел митинг против повышения цен на газ", "kk", "ru"),
    ("Алматыда газ бағасының өсуіне қарсы наразылық өтті", None, "kk"),
    ("Алматыда газ бағасының өсуіне қарсы наразылық өтті", "ru", "kk"),
    ("Интернет бұғатталды", None, "kk"),  # Kazakh letters are strong evidence
    ("Митинг в Алматы", None, "ru"),  # a Russian preposition settles a short headline
    ("В Жаңаөзене снова протестуют нефтяники, сообщили в акимате области", None, "ru"),  # one Kazakh name
    ("12:45", "kk", "kk"),  # nothing to go on: the hint
    ("", "ru", "ru"),
    ("", None, "en"),
]


@pytest.mark.parametrize("text,hint,expected", DETECT)
def test_detect(text, hint, expected):
    assert detect(text, hint) == expected


def test_short_ambiguous_cyrillic_defers_to_the_hint():
    # "Президент Токаев" is the same in Russian and Kazakh: the feed decides
    assert detect("Президент Токаев", "kk") == "kk"
    assert detect("Президент Токаев", "ru") == "ru"


def test_an_english_hint_does_not_make_cyrillic_english():
    assert detect("Президент Токаев", "en") in ("ru", "kk")


def test_unknown_hint_is_ignored():
    assert detect("Protests in Almaty", "de") == "en"


def test_detect_many_agrees_with_detect():
    pairs = [(text, hint) for text, hint, _ in DETECT] + [("Президент Токаев", "kk"), ("ОДКБ", None)]
    assert detect_many(pairs) == [detect(t, h) for t, h in pairs]
    assert detect_many([]) == []


def _labelled_rows():
    from pathlib import Path
    import json

    data = Path(__file__).parent / "data"
    for name in ("match_dev.jsonl", "stories_dev.jsonl", "stories_check.jsonl"):
        for line in (data / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            yield row["lang"], row["title"], row.get("summary", "")


# Kazakh typed without its own letters (ә->а, қ->к, ...), as on keyboards without them
_FOLD_KK = str.maketrans("әғқңөұүһіӘҒҚҢӨҰҮҺІ", "агкноуyhiАГКНОУYHI".replace("y", "у").replace("Y", "У"))


def test_labelled_items_are_detected_as_the_pipeline_reads_them():
    """Title and summary, as the pipeline passes them, against the team's labelled items, with
    the feed's hint pointing the wrong way and Kazakh letters folded away: no evidence from the
    script, so lingua (trigram models) decides those on its own."""
    rows = list(_labelled_rows())
    assert len(rows) > 600 and {lang for lang, _, _ in rows} == {"en", "ru", "kk"}
    wrong_hint = {"en": "ru", "ru": "kk", "kk": "ru"}
    pairs = [(f"{t}\n{s}", wrong_hint[lang]) for lang, t, s in rows]
    folded = [(f"{t}\n{s}".translate(_FOLD_KK) if lang == "kk" else f"{t}\n{s}", wrong_hint[lang])
              for lang, t, s in rows if lang != "en"]
    assert [lang for lang, _, _ in rows] == detect_many(pairs)
    assert [lang for lang, _, _ in rows if lang != "en"] == detect_many(folded)
    assert any(language._evidence(text, None) is None for text, _ in folded)  # lingua did take part
    titles = detect_many([(t, None) for _, t, _ in rows])
    assert sum(got == lang for got, (lang, _, _) in zip(titles, rows)) >= 0.99 * len(rows)


def test_nothing_heavy_happens_at_import():
    code = ("import sys, bot.language as l; "
            "print(l._detector is None, l._morph is None, 'lingua' in sys.modules, 'pymorphy3' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True", "False", "False"]


@pytest.mark.parametrize("lang,a,b", [
    ("ru", "Казахстан", "В Казахстане"),  # Snowball stems these two differently; we must not
    ("ru", "Токаев", "Токаева"),  # a surname pymorphy misreads as a form of «токай»
    ("ru", "Жанаозен", "в Жанаозене"),
    ("ru", "митинг", "митинги"),
    ("ru", "миротворцы", "миротворцев"),
    ("en", "protest", "protests"),
    ("en", "deployment", "deployed"),
    ("kk", "Алматы", "Алматыға"),
    ("kk", "наразылық", "наразылықтар"),
])
def test_inflected_forms_share_the_last_token(lang, a, b):
    assert tokens(a, lang)[-1] == tokens(b, lang)[-1]


def test_tokens_split_hyphens_and_keep_order():
    assert tokens("Nur-Sultan protests", "en") == ["nur", "sultan", "protest"]


def test_tokens_reject_unknown_language():
    with pytest.raises(ValueError, match="language"):
        tokens("hello", "de")


def test_word_keys_of_a_russian_word_include_lemma_and_stem():
    keys = language.word_keys("Казахстане", "ru")
    assert "казахстан" in keys and "~казахстан" in keys


def test_latin_lookalikes_inside_cyrillic_words_are_repaired():
    # "Алматы" typed with a Latin "a" and "ы": still the same word
    assert language.fold_word("Aлматы") == "алматы"


@pytest.mark.parametrize("cyr,lat", [
    ("Алматы", "Almaty"),
    ("Жаңаөзен", "Zhanaozen"),
    ("Шымкент", "Shymkent"),
    ("Щучинск", "Shchuchinsk"),
    ("ОДКБ", "ODKB"),
])
def test_to_latin(cyr, lat):
    assert to_latin(cyr) == lat


@pytest.mark.parametrize("lat,cyr", [
    ("Almaty", "алматы"),
    ("Zhanaozen", "жанаозен"),
    ("Tokayev", "токаев"),
    ("Shymkent", "шымкент"),
])
def test_to_cyrillic(lat, cyr):
    assert to_cyrillic(lat) == cyr


@pytest.mark.parametrize("forms", [
    [("Almaty", "en"), ("Алматы", "ru"), ("Алматыға", "kk"), ("Алматыда", "kk")],
    [("Tokayev", "en"), ("Токаев", "ru"), ("Токаева", "ru"), ("Тоқаевтың", "kk")],
    [("Zhanaozen", "en"), ("Жанаозене", "ru"), ("Жаңаөзенде", "kk")],
    [("Kazakhstan", "en"), ("Казахстане", "ru"), ("Қазақстанда", "kk")],
])
def test_name_key_meets_across_scripts(forms):
    assert len({name_key(w, lang) for w, lang in forms}) == 1


def test_name_key_keeps_different_names_apart():
    assert name_key("Astana", "en") != name_key("Almaty", "en")
    assert name_key("Aktau", "en") != name_key("Aktobe", "en")
