"""Topic matching: the shipped rules, inflection in every language, reasons, dev-set quality."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bot import config as config_mod
from bot.match import Matcher
from bot.models import LANGS, WatchWord
from bot.rules import parse_topic

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / "tests" / "data" / "match_dev.jsonl"
F1_FLOOR = 0.90


@pytest.fixture(scope="module")
def shipped():
    cfg = config_mod.load(ROOT / "config.toml")
    return Matcher(cfg.topics)


def topic_ids(matcher: Matcher, title: str, summary: str, lang: str) -> set[str]:
    return {m.topic for m in matcher.match(title, summary, lang)}


# -- the issue's own examples ----------------------------------------------------------


def test_kazakh_report_of_csto_forces_arriving_matches(shipped):
    assert "csto-deployment" in topic_ids(shipped, "ҰҚШҰ бітімгершілік күштері Алматыға келді", "", "kk")


def test_csto_summit_is_not_a_deployment(shipped):
    assert topic_ids(shipped, "CSTO summit held in Minsk", "", "en") == set()


@pytest.mark.parametrize("lang,title,summary,topic", [
    ("en", "CSTO peacekeepers deployed to Almaty", "", "csto-deployment"),
    ("ru", "Миротворцы ОДКБ прибыли в Алматы", "", "csto-deployment"),
    ("ru", "ОДКБ начала вывод войск из Казахстана", "", "csto-deployment"),
    ("kk", "ҰҚШҰ әскерлері Қазақстаннан шығарылды", "", "csto-deployment"),
    ("en", "Police detain protesters in Zhanaozen", "", "kz-unrest"),
    ("ru", "В Жанаозене продолжается забастовка нефтяников", "", "kz-unrest"),
    ("ru", "Протестующие в Казахстане штурмовали акимат", "", "kz-unrest"),
    ("kk", "Жаңаөзенде наразылық басталды", "", "kz-unrest"),
    ("kk", "Алматыда коменданттық сағат енгізілді", "Қалада жаппай тәртіпсіздіктер болды.", "kz-unrest"),
    ("en", "Mobile internet cut off in Almaty", "", "internet-shutdown"),
    ("ru", "В Казахстане заблокировали Telegram", "", "internet-shutdown"),
    ("kk", "Қазақстанда мобильді интернет өшірілді", "", "internet-shutdown"),
])
def test_positives_in_every_language(shipped, lang, title, summary, topic):
    assert topic in topic_ids(shipped, title, summary, lang)


@pytest.mark.parametrize("lang,title,summary", [
    ("en", "CSTO exercises begin in Tajikistan", "Troops from five countries arrive for the drills."),
    ("ru", "Учения ОДКБ начались в Таджикистане", "Войска пяти стран прибыли на полигон."),
    ("kk", "Тәжікстанда ҰҚШҰ жаттығулары басталды", "Бес елдің әскерлері полигонға келді."),
    ("en", "Floods in Kazakhstan: state of emergency declared in Kostanay region", ""),
    ("ru", "В Костанайской области объявили чрезвычайное положение из-за паводка", ""),
    ("kk", "Қостанай облысында су тасқынына байланысты төтенше жағдай жарияланды", ""),
    ("en", "Kazakhstan rolls out faster mobile internet", "Operators promise higher speeds with 5G."),
    ("ru", "В Казахстане ускорят мобильный интернет", "Операторы запускают 5G."),
    ("kk", "Қазақстанда мобильді интернет жылдамдығы артады", "Операторлар 5G іске қосады."),
    ("en", "Protests in Georgia continue", "Thousands rally in Tbilisi."),
])
def test_hard_negatives_in_every_language(shipped, lang, title, summary):
    assert topic_ids(shipped, title, summary, lang) == set()


# -- how a match explains itself --------------------------------------------------------


def test_match_records_terms_as_they_appeared(shipped):
    [m] = shipped.match("Жаңаөзенде наразылар әкімдік алдына жиналды", "", "kk")
    assert m.topic == "kz-unrest"
    assert "Жаңаөзенде" in m.terms and "наразылар" in m.terms
    assert m.score >= 2


def test_phrase_terms_are_shown_whole(shipped):
    [m] = shipped.match("Kazakhstan declares a state of emergency", "Curfew in Almaty after riots.", "en")
    assert "state of emergency" in m.terms
    assert "of" not in m.terms


def test_excluded_groups_do_not_appear_in_the_reason(shipped):
    matches = shipped.match("Protesters clash with police in Almaty after the flood", "", "en")
    assert [m.topic for m in matches] == ["kz-unrest"]
    assert "flood" not in matches[0].terms


def test_matching_uses_the_items_language(shipped):
    # Russian words are not matched by English rules and vice versa
    assert topic_ids(shipped, "Протесты в Алматы", "", "en") == set()
    assert "kz-unrest" in topic_ids(shipped, "Протесты в Алматы", "", "ru")


def test_unknown_language_is_an_error(shipped):
    with pytest.raises(ValueError, match="language"):
        shipped.match("Protests", "", "de")


def test_empty_item_matches_nothing(shipped):
    assert shipped.match("", "", "kk") == []


# -- the rule language at work --------------------------------------------------------------


def small_topic(**extra) -> Matcher:
    raw = {
        "id": "t",
        "name": "T",
        "match": "place AND event AND NOT noise",
        "groups": {
            "place": {"en": ["Almaty", "Nur-Sultan"], "ru": ["Алматы"], "kk": ["Алматы"], "weight": 1},
            "event": {"en": ["state of emergency", "riot*"], "ru": ["беспорядки"], "kk": ["тәртіпсіздік"],
                      "weight": 2},
            "noise": {"en": ["football"], "ru": ["футбол"], "kk": ["футбол"]},
        },
    }
    raw.update(extra)
    return Matcher([parse_topic(raw, "topics[0]")])


def test_and_not():
    m = small_topic()
    assert topic_ids(m, "Riots in Almaty", "", "en") == {"t"}
    assert topic_ids(m, "Riots in Almaty after football", "", "en") == set()
    assert topic_ids(m, "Riots in Bishkek", "", "en") == set()


def test_phrases_need_their_words_in_order():
    m = small_topic()
    assert topic_ids(m, "Almaty: state of emergency", "", "en") == {"t"}
    assert topic_ids(m, "Almaty: emergency services visit the state farm", "", "en") == set()
    assert topic_ids(m, "Nur-Sultan: riots", "", "en") == {"t"}  # hyphenated name, phrase of two words


def test_a_phrase_does_not_span_a_sentence_or_the_title_end():
    m = small_topic()
    # the title ends in "state", the summary starts with "Of": two texts, no phrase
    assert topic_ids(m, "Almaty declares nothing of the state", "Of emergency there is no talk.", "en") == set()
    assert topic_ids(m, "Almaty: a visit of state. Emergency crews rest", "", "en") == set()
    assert topic_ids(m, "Almaty, the state, emergency and more", "", "en") == set()
    assert topic_ids(m, "Almaty state (emergency) drill", "", "en") == set()
    # quotes and hyphens inside a phrase are fine, and the reason shows the text as written
    [match] = m.match("Almaty declares a «state of emergency»", "", "en")
    assert "state of emergency" in match.terms
    [match] = m.match("Almaty: State   of emergency", "", "en")
    assert "State   of emergency" in match.terms


def test_a_phrase_found_twice_counts_where_its_words_are_together():
    m = small_topic()
    assert topic_ids(m, "Almaty: no state. Emergency talks", "A state of emergency is declared", "en") == {"t"}


def test_a_watch_word_with_its_own_full_stop_still_matches():
    words = [WatchWord(id=1, chat_id=1, word="U.S. embassy"), WatchWord(id=2, chat_id=1, word="Tengrinews.kz"),
             WatchWord(id=3, chat_id=1, word="mobile internet")]
    m = Matcher([], words)
    found = m.match("The U.S. embassy quotes Tengrinews.kz", "Mobile. Internet cafes are full.", "en")
    assert {x.topic: x.terms for x in found} == {"watch:1": ["U.S. embassy"], "watch:2": ["Tengrinews.kz"]}


def test_shipped_phrase_not_made_of_the_title_end_and_summary_start(shipped):
    # "интернет" ends the title, "Банки" starts the summary: not the excluded "интернет-банк"
    title, summary = "В Жанаозене спустя три дня восстановили интернет", "Банки сообщают, что оплата картами проходит."
    assert topic_ids(shipped, title, summary, "ru") == {"internet-shutdown"}


@pytest.mark.parametrize("title,topic", [
    ("Алматы орталығында төтенше жағдай режимі енгізілді", "kz-unrest"),  # орталық is not өрт (fire)
    ("Ақтауда мессенджерлер жедел түрде бұғатталды", "internet-shutdown"),  # жедел is not жеделдету
    ("Алматыда тең құқық талап еткен митинг өтті", "kz-unrest"),  # тең is not теңге
])
def test_a_kazakh_excluding_word_is_not_cut_down_to_what_common_words_share(shipped, title, topic):
    assert topic in topic_ids(shipped, title, "", "kk")


def test_prefix_terms():
    m = small_topic()
    assert topic_ids(m, "Rioting in Almaty", "", "en") == {"t"}
    assert topic_ids(m, "Almaty rio grande", "", "en") == set()


def test_inflection_in_russian_and_kazakh():
    m = small_topic()
    assert topic_ids(m, "Массовые беспорядков в Алматы", "", "ru") == {"t"}
    assert topic_ids(m, "Алматыдағы тәртіпсіздіктер", "", "kk") == {"t"}


def test_weights_and_threshold():
    low = small_topic(threshold=3)
    assert topic_ids(low, "Riots in Almaty", "", "en") == {"t"}  # 1 + 2
    [match] = low.match("Riots in Almaty", "", "en")
    assert match.score == 3
    with pytest.raises(ValueError, match="never be reached"):
        small_topic(threshold=4)


def test_concepts_are_the_same_across_languages(shipped):
    en = shipped.concepts("CSTO peacekeepers arrive in Almaty", "", "en")
    ru = shipped.concepts("Миротворцы ОДКБ прибыли в Алматы", "", "ru")
    kk = shipped.concepts("ҰҚШҰ бітімгерлері Алматыға келді", "", "kk")
    assert {"csto", "place:almaty"} <= en
    assert {"csto", "place:almaty"} <= ru
    assert {"csto", "place:almaty"} <= kk
    assert shipped.concepts("Wheat harvest beats forecast", "", "en") == set()


def test_watch_words_do_not_change_topic_results(shipped):
    cfg = config_mod.load(ROOT / "config.toml")
    words = [WatchWord(id=i, chat_id=1, word=f"Word{i}", expansions={}) for i in range(1, 301)]
    with_words = Matcher(cfg.topics, words)
    for item in load_dev()[:60]:
        plain = topic_ids(shipped, item["title"], item["summary"], item["lang"])
        both = {t for t in topic_ids(with_words, item["title"], item["summary"], item["lang"])
                if not t.startswith("watch:")}
        assert plain == both


# -- the development set ---------------------------------------------------------------------


def load_dev() -> list[dict]:
    with DEV.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_dev_set_shape():
    items = load_dev()
    assert len(items) >= 180
    per_lang = Counter(i["lang"] for i in items)
    assert all(per_lang[lang] >= 50 for lang in LANGS), per_lang
    hard = sum(1 for i in items if not i["topics"] and i.get("hard_negative"))
    assert hard / len(items) >= 0.40
    cfg = config_mod.load(ROOT / "config.toml")
    for topic in cfg.topics:
        for lang in LANGS:
            assert any(topic.id in i["topics"] and i["lang"] == lang for i in items), (topic.id, lang)
    for i in items:
        assert set(i) >= {"lang", "title", "summary", "topics"}
        assert set(i["topics"]) <= {t.id for t in cfg.topics}


def f1_table(matcher: Matcher, items: list[dict], ids: list[str]) -> dict[tuple[str, str], float]:
    counts = {(t, lang): [0, 0, 0] for t in ids for lang in LANGS}
    for item in items:
        got = topic_ids(matcher, item["title"], item["summary"], item["lang"])
        for t in ids:
            c = counts[(t, item["lang"])]
            if t in got and t in item["topics"]:
                c[0] += 1
            elif t in got:
                c[1] += 1
            elif t in item["topics"]:
                c[2] += 1
    return {k: (2 * tp / (2 * tp + fp + fn) if tp else 0.0) for k, (tp, fp, fn) in counts.items()}


def test_f1_floor_per_topic_and_language(shipped):
    items = load_dev()
    table = f1_table(shipped, items, [t.id for t in shipped.topics])
    low = {k: round(v, 3) for k, v in table.items() if v < F1_FLOOR}
    assert not low, f"F1 below {F1_FLOOR}: {low}"


def test_f1_table_can_fail():
    # labels the small riot topic cannot reproduce score low: the floor test has teeth
    items = load_dev()
    fake = [dict(i, topics=["t"]) if i["lang"] == "en" and i["topics"] else i for i in items]
    table = f1_table(small_topic(), fake, ["t"])
    assert table[("t", "en")] < F1_FLOOR


def test_match_with_concepts_equals_match_and_concepts_apart():
    cfg = config_mod.load(ROOT / "config.toml")
    words = [WatchWord(id=1, chat_id=1, word="Almaty", expansions={})]
    matcher = Matcher(cfg.topics, words)
    items = load_dev() + [{"title": "", "summary": "", "lang": "en"}]
    with_concepts = 0
    for item in items:
        args = (item["title"], item["summary"], item["lang"])
        matches, concepts = matcher.match_with_concepts(*args)
        assert matches == matcher.match(*args)
        assert concepts == matcher.concepts(*args)
        with_concepts += bool(concepts and matches)
    assert with_concepts  # the set exercises items with both matches and concepts
    with pytest.raises(ValueError):
        matcher.match_with_concepts("x", "", "de")
