"""Readers' watch words: expansion, storage (real SQLite file) and matching."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.match import Matcher, aexpand_watchword, expand_watchword
from bot.models import WatchWord


def watched(matcher: Matcher, title: str, lang: str, summary: str = "") -> set[str]:
    return {m.topic for m in matcher.match(title, summary, lang) if m.topic.startswith("watch:")}


# -- expansion -------------------------------------------------------------------------------


def test_latin_name_is_transliterated_without_a_translator():
    lang, exp = expand_watchword("Tokayev")
    assert lang == "en"
    assert exp["en"] == ["Tokayev"]
    assert exp["ru"] == ["Токаев"] and exp["kk"] == ["Токаев"]


def test_kazakh_word_is_detected_and_transliterated():
    lang, exp = expand_watchword("Жаңаөзен")
    assert lang == "kk"
    assert exp["kk"] == ["Жаңаөзен"]
    assert exp["en"] == ["Zhanaozen"]
    assert exp["ru"] == ["Жанаозен"]


def test_translator_is_used_when_it_answers():
    calls = []

    def translate(text, src, dst):
        calls.append((text, src, dst))
        return {"ru": "наводнение", "kk": "су тасқыны"}[dst]

    lang, exp = expand_watchword("flood", translate=translate)
    assert lang == "en"
    assert exp == {"en": ["flood"], "ru": ["наводнение"], "kk": ["су тасқыны"]}
    assert sorted(c[2] for c in calls) == ["kk", "ru"]


@pytest.mark.parametrize("translate", [
    lambda text, src, dst: None,
    lambda text, src, dst: "",
    lambda text, src, dst: 1 / 0,
])
def test_translator_failure_falls_back_to_transliteration(translate):
    lang, exp = expand_watchword("Almaty", translate=translate)
    assert exp["ru"] == ["Алматы"] and exp["kk"] == ["Алматы"]


def test_async_translator_outside_a_loop():
    async def translate(text, src, dst):
        return {"ru": "Алматы", "kk": "Алматы"}[dst]

    assert expand_watchword("Almaty", translate=translate)[1]["ru"] == ["Алматы"]


async def test_async_expansion_inside_a_loop():
    async def translate(text, src, dst):
        await asyncio.sleep(0)
        return {"en": "protest", "kk": "наразылық"}[dst]

    lang, exp = await aexpand_watchword("протест", translate=translate)
    assert lang == "ru"
    assert exp == {"en": ["protest"], "ru": ["протест"], "kk": ["наразылық"]}


async def test_async_translator_timeout_falls_back():
    async def slow(text, src, dst):
        await asyncio.sleep(5)

    lang, exp = await aexpand_watchword("Almaty", translate=slow, timeout=0.05)
    assert exp["ru"] == ["Алматы"]


async def test_sync_expansion_with_async_translator_inside_a_loop_says_what_to_do():
    async def translate(text, src, dst):
        return "x"

    with pytest.raises(RuntimeError, match="aexpand_watchword"):
        expand_watchword("Almaty", translate=translate)


@pytest.mark.parametrize("word", ["", "   ", "***", "x" * 65])
def test_bad_words_are_refused(word):
    with pytest.raises(ValueError, match="watch word"):
        expand_watchword(word)


# -- matching ----------------------------------------------------------------------------------


def test_latin_watch_word_finds_cyrillic_inflected_names():
    lang, exp = expand_watchword("Tokayev")
    m = Matcher([], [WatchWord(id=7, chat_id=1, word="Tokayev", expansions=exp, lang=lang)])
    assert watched(m, "Тоқаевтың жарлығы жарияланды", "kk") == {"watch:7"}
    assert watched(m, "Указ Токаева опубликован", "ru") == {"watch:7"}
    assert watched(m, "Tokayev signs decree", "en") == {"watch:7"}
    assert watched(m, "Parliament meets", "en") == set()


def test_watch_match_shows_the_word_as_it_appeared():
    m = Matcher([], [WatchWord(id=3, chat_id=1, word="Almaty", expansions={"kk": ["Алматы"]}, lang="en")])
    [match] = m.match("Алматыда жаңа метро бекеті ашылды", "", "kk")
    assert match.topic == "watch:3" and match.terms == ["Алматыда"]


def test_watch_word_matching_is_inflection_aware():
    m = Matcher([], [WatchWord(id=1, chat_id=1, word="наводнение", lang="ru",
                               expansions={"en": ["flood"], "kk": ["су тасқыны"]})])
    assert watched(m, "Наводнения в Костанайской области", "ru") == {"watch:1"}
    assert watched(m, "Floods hit northern Kazakhstan", "en") == {"watch:1"}
    assert watched(m, "Су тасқынына байланысты ауыл көшірілді", "kk") == {"watch:1"}


def test_name_keys_do_not_catch_common_words():
    m = Matcher([], [WatchWord(id=1, chat_id=1, word="Zhana", expansions={}, lang="en")])
    assert watched(m, "Алматыда жаңа мектеп ашылды", "kk") == set()


def test_set_watchwords_replaces_them():
    m = Matcher([], [WatchWord(id=1, chat_id=1, word="Almaty", expansions={}, lang="en")])
    assert watched(m, "Almaty news", "en") == {"watch:1"}
    m.set_watchwords([WatchWord(id=2, chat_id=1, word="Astana", expansions={}, lang="en")])
    assert watched(m, "Almaty news", "en") == set()
    assert watched(m, "Astana news", "en") == {"watch:2"}


def test_a_thousand_watch_words_are_compiled_not_looped():
    words = [WatchWord(id=i, chat_id=i % 10, word=f"Name{i:04d}x", expansions={"ru": [f"Имя{i:04d}"]})
             for i in range(1, 1001)]
    words.append(WatchWord(id=5000, chat_id=1, word="Aktau", expansions={"ru": ["Актау"], "kk": ["Ақтау"]}))
    m = Matcher([], words)
    assert watched(m, "В Актау открылся порт", "ru") == {"watch:5000"}
    assert watched(m, "Name0500x and Name0999x", "en") == {"watch:500", "watch:999"}


# -- the store ----------------------------------------------------------------------------------


@pytest.fixture
def chat(store):
    store.ensure_subscriber(42, lang="en", digest_time="08:00", timezone="Asia/Almaty")
    return 42


def test_add_list_and_remove(store, chat):
    lang, exp = expand_watchword("Tokayev")
    w = store.add_watchword(chat, "Tokayev", lang=lang, expansions=exp)
    assert w.id and w.chat_id == chat and w.word == "Tokayev" and w.lang == "en"
    assert w.expansions == exp
    assert [x.word for x in store.watchwords(chat)] == ["Tokayev"]
    assert [x.id for x in store.all_watchwords()] == [w.id]
    assert store.remove_watchword(chat, "tokayev")  # case-insensitive
    assert store.watchwords(chat) == []
    assert not store.remove_watchword(chat, "Tokayev")


def test_same_word_twice_keeps_its_id(store, chat):
    first = store.add_watchword(chat, "Almaty", lang="en", expansions={"ru": ["Алматы"]})
    again = store.add_watchword(chat, "ALMATY", lang="en", expansions={"ru": ["Алматы", "Алма-Ата"]})
    assert again.id == first.id
    assert again.expansions == {"ru": ["Алматы", "Алма-Ата"]}
    assert len(store.watchwords(chat)) == 1


def test_reader_can_edit_expansions(store, chat):
    store.add_watchword(chat, "Almaty", lang="en", expansions={"ru": ["Алматы"]})
    edited = store.update_watchword_expansions(chat, "almaty", {"ru": ["Алматы", "Алма-Ата"], "kk": ["Алматы"]})
    assert edited.expansions == {"ru": ["Алматы", "Алма-Ата"], "kk": ["Алматы"]}
    assert store.watchwords(chat)[0].expansions == edited.expansions
    assert store.update_watchword_expansions(chat, "Astana", {"ru": ["Астана"]}) is None


@pytest.mark.parametrize("word,lang,expansions,problem", [
    ("", None, {}, "empty"),
    ("x" * 65, None, {}, "longer than"),
    ("Almaty", "de", {}, "lang must be"),
    ("Almaty", "en", {"de": ["Almaty"]}, "expansion language"),
    ("Almaty", "en", {"ru": "Алматы"}, "must be a list"),
    ("Almaty", "en", {"ru": [""]}, "empty or non-text"),
    ("Almaty", "en", {"ru": ["x" * 200]}, "longer than"),
])
def test_bad_input_is_refused_and_nothing_is_stored(store, chat, word, lang, expansions, problem):
    with pytest.raises(ValueError, match=problem):
        store.add_watchword(chat, word, lang=lang, expansions=expansions)
    assert store.watchwords(chat) == []


def test_unknown_chat_is_refused(store):
    with pytest.raises(ValueError, match="unknown chat"):
        store.add_watchword(999, "Almaty")


def test_corrupt_expansions_in_the_database_do_not_break_reading(store, chat):
    w = store.add_watchword(chat, "Almaty", lang="en", expansions={"ru": ["Алматы"]})
    with store.conn:
        store.conn.execute("UPDATE watchwords SET expansions = ? WHERE id = ?", ("{not json", w.id))
    assert store.watchwords(chat)[0].expansions == {}


def test_paused_chats_are_left_out_of_matching(store, chat):
    store.add_watchword(chat, "Almaty", lang="en")
    store.update_subscriber(chat, paused="blocked")
    assert store.all_watchwords() == []
    assert len(store.all_watchwords(include_paused=True)) == 1


def test_stored_words_drive_the_matcher(store, chat):
    lang, exp = expand_watchword("Zhanaozen")
    w = store.add_watchword(chat, "Zhanaozen", lang=lang, expansions=exp)
    m = Matcher([], store.all_watchwords())
    [match] = m.match("Жаңаөзенде жиын өтті", "", "kk")
    assert match.topic == f"watch:{w.id}"
    row = store.conn.execute("SELECT expansions FROM watchwords WHERE id = ?", (w.id,)).fetchone()
    assert json.loads(row[0]) == exp
