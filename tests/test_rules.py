"""The topic rule language: parsing, validation errors that name the key, the shipped rules."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from bot import config as config_mod
from bot.errors import ConfigError
from bot.models import LANGS
from bot.rules import evaluate, format_expression, parse_expression, parse_term, parse_topic, positive_names
from tests.conftest import make_config

ROOT = Path(__file__).resolve().parent.parent

GOOD = {
    "id": "csto-deployment",
    "name": "CSTO troop deployments",
    "match": "csto AND (deploy OR troops) AND NOT exercise",
    "groups": {
        "csto": {"en": ["CSTO"], "ru": ["ОДКБ"], "kk": ["ҰҚШҰ"], "concept": "csto"},
        "deploy": {"en": ["deploy", "send troops"], "ru": ["ввод войск"], "kk": ["әскер енгізу"], "weight": 2},
        "troops": {"any": ["peacekeep*"], "ru": ["миротворцы"]},
        "exercise": {"en": ["exercise", "drills"], "ru": ["учения"], "kk": ["жаттығу"]},
    },
}


def topic_with(**changes) -> dict:
    raw = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


def test_a_good_topic_parses():
    topic = parse_topic(GOOD, "topics[0]")
    assert topic.id == "csto-deployment"
    assert [g.name for g in topic.groups] == ["csto", "deploy", "troops", "exercise"]
    assert topic.group("deploy").weight == 2.0
    assert topic.positive == {"csto", "deploy", "troops"}
    # "any" terms are tried in every language, after the language's own
    troops = topic.group("troops")
    assert [t.text for t in troops.terms["ru"]] == ["миротворцы", "peacekeep*"]
    assert [t.text for t in troops.terms["kk"]] == ["peacekeep*"]
    assert topic.group("csto").concept == "csto"
    assert topic.group("exercise").concept == "exercise"  # defaults to the group name


@pytest.mark.parametrize("text,words,prefix", [
    ("CSTO", ("CSTO",), (False,)),
    ("state of emergency", ("state", "of", "emergency"), (False, False, False)),
    ("  ввод   войск ", ("ввод", "войск"), (False, False)),
    ("peacekeep*", ("peacekeep",), (True,)),
    ("mobile internet*", ("mobile", "internet"), (False, True)),
    ("Nur-Sultan", ("Nur", "Sultan"), (False, False)),
])
def test_terms(text, words, prefix):
    term = parse_term(text, "x")
    assert term.words == words and term.prefix == prefix
    assert term.is_phrase == (len(words) > 1)


@pytest.mark.parametrize("value,problem", [
    ("", "is empty"),
    ("   ", "is empty"),
    ("*", "no letters"),
    ("* peace", "star must end a word"),
    ("pe*ace", "star must end a word"),
    ("ab*", "at least 3 letters"),
    ("!!!", "no letters"),
    (42, "must be a string"),
    ("one two three four five six seven eight nine", "more than 8 words"),
    ("x" * 200, "longer than"),
])
def test_bad_terms(value, problem):
    with pytest.raises(ConfigError, match=problem) as err:
        parse_term(value, "topics[0].groups.g.en[0]")
    assert err.value.key == "topics[0].groups.g.en[0]"


@pytest.mark.parametrize("text,matched,expected", [
    ("a AND b", {"a", "b"}, True),
    ("a AND b", {"a"}, False),
    ("a OR b", {"b"}, True),
    ("a AND NOT b", {"a", "b"}, False),
    ("a AND NOT b", {"a"}, True),
    ("NOT NOT a", {"a"}, True),
    ("a OR b AND c", {"a"}, True),  # AND binds tighter than OR
    ("(a OR b) AND c", {"a"}, False),
    ("a and (b or c) and not d", {"a", "c"}, True),  # keywords in any case
])
def test_expressions(text, matched, expected):
    assert evaluate(parse_expression(text, "m"), matched) is expected


def test_positive_names_skip_negated_groups():
    expr = parse_expression("a AND NOT (b OR NOT c) AND d", "m")
    assert positive_names(expr) == {"a", "c", "d"}
    assert format_expression(expr) == "(a AND NOT (b OR NOT c) AND d)"


@pytest.mark.parametrize("text,problem", [
    ("a AND", "expected a group name"),
    ("(a OR b", "missing '\\)'"),
    ("a b", "expected AND or OR"),
    ("a & b", "unexpected '&' at position 3"),
    ("", "non-empty expression"),
    ("a OR )", "expected a group name or '\\(' at position 6"),
])
def test_bad_expressions(text, problem):
    with pytest.raises(ConfigError, match=problem) as err:
        parse_expression(text, "topics[2].match")
    assert err.value.key == "topics[2].match"


@pytest.mark.parametrize("raw,key,problem", [
    (topic_with(match="csto AND deploy AND troops AND NOT exercise AND nope"), "topics[1].match", "unknown group 'nope'"),
    (topic_with(match="csto AND deploy AND NOT exercise"), "topics[1].groups.troops", "not used in match"),
    (topic_with(match=None), "topics[1].match", "is required"),
    (topic_with(match="NOT (csto OR deploy OR troops OR exercise)"), "topics[1].match", "not under NOT"),
    (topic_with(threshold=10), "topics[1].threshold", "can never be reached"),
    (topic_with(threshold=-1), "topics[1].threshold", "at least 0"),
    (topic_with(threshold="high"), "topics[1].threshold", "must be a number"),
    (topic_with(colour="red"), "topics[1].colour", "unknown key"),
    (topic_with(id="Bad Id"), "topics[1].id", "short lower-case id"),
    (topic_with(groups=["csto"]), "topics[1].groups", "table of named groups"),
])
def test_topic_errors_name_the_key(raw, key, problem):
    with pytest.raises(ConfigError, match=problem) as err:
        parse_topic(raw, "topics[1]")
    assert err.value.key == key


def _with_group(name: str, group) -> dict:
    raw = copy.deepcopy(GOOD)
    raw["groups"][name] = group
    return raw


@pytest.mark.parametrize("group,key,problem", [
    ({"en": ["CSTO"], "ru": ["ОДКБ", "ОДКБ*", "", "x"]}, "topics[1].groups.csto.ru[2]", "is empty"),
    ({"en": "CSTO"}, "topics[1].groups.csto.en", "must be a list"),
    ({"de": ["OVKS"]}, "topics[1].groups.csto.de", "unknown key"),
    ({"weight": "heavy", "en": ["CSTO"]}, "topics[1].groups.csto.weight", "must be a number"),
    ({"concept": "Not An Id", "en": ["CSTO"]}, "topics[1].groups.csto.concept", "lower-case id"),
    ({}, "topics[1].groups.csto", "has no terms"),
    ({"parts": {"almaty": {}}}, "topics[1].groups.csto.parts.almaty", "has no terms"),
    ({"parts": {"almaty": {"en": ["Almaty"], "fr": ["Almaty"]}}}, "topics[1].groups.csto.parts.almaty.fr",
     "unknown key"),
    ({"parts": {"Almaty City": {"en": ["Almaty"]}}}, "topics[1].groups.csto.parts.Almaty City", "lower-case"),
    ("CSTO", "topics[1].groups.csto", "must be a table"),
])
def test_group_errors_name_the_key(group, key, problem):
    with pytest.raises(ConfigError, match=problem) as err:
        parse_topic(_with_group("csto", group), "topics[1]")
    assert err.value.key == key


def test_parts_make_sub_concepts():
    raw = _with_group("csto", {"en": ["CSTO"], "parts": {"almaty": {"en": ["Almaty"], "kk": ["Алматы"]}}})
    group = parse_topic(raw, "topics[0]").group("csto")
    assert group.parts[0].concept == "csto:almaty"
    assert [t.text for t in group.parts[0].terms["kk"]] == ["Алматы"]


def test_a_topic_without_rules_is_allowed_and_never_matches():
    topic = parse_topic({"id": "later", "name": "Written later"}, "topics[0]")
    assert topic.expr is None and topic.groups == ()


def test_config_loader_reports_rule_errors_with_the_full_key(tmp_path):
    bad = _with_group("csto", {"en": ["CSTO"], "ru": ["ОДКБ", "ОДКБ", "ОДКБ", "a*"]})
    with pytest.raises(ConfigError) as err:
        make_config(tmp_path, topics=[{"id": "first", "name": "First"}, bad])
    assert str(err.value).startswith("topics[1].groups.csto.ru[3]: a prefix needs at least 3 letters")


def test_shipped_rules_load_and_cover_every_language():
    cfg = config_mod.load(ROOT / "config.toml")
    ids = [t.id for t in cfg.topics]
    assert ids == ["kz-unrest", "csto-deployment", "internet-shutdown"]
    names = {t.id: t.name for t in cfg.topics}
    assert names["kz-unrest"] == "Unrest in Kazakhstan"
    for topic in cfg.topics:
        assert topic.expr is not None
        for name in topic.positive:
            group = topic.group(name)
            for lang in LANGS:
                count = len(group.terms[lang]) + sum(len(p.terms[lang]) for p in group.parts)
                assert count > 0, f"{topic.id}.{name} has no {lang} terms"


def test_shipped_rules_carry_the_abbreviations_and_spellings():
    cfg = config_mod.load(ROOT / "config.toml")
    csto = cfg.topic("csto-deployment").group("csto")
    assert {"CSTO"} <= {t.text for t in csto.terms["en"]}
    assert {"ОДКБ"} <= {t.text for t in csto.terms["ru"]}
    assert {"ҰҚШҰ"} <= {t.text for t in csto.terms["kk"]}
    places = cfg.topic("kz-unrest").group("kz_place")
    zhanaozen = next(p for p in places.parts if p.name == "zhanaozen")
    spellings = {t.text for lang in LANGS for t in zhanaozen.terms[lang]}
    assert {"Zhanaozen", "Janaozen", "Жанаозен", "Жаңаөзен"} <= spellings
