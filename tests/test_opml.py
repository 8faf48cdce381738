"""OPML import and export: round trips, folders, languages, and documents we refuse."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from defusedxml import ElementTree as SafeET
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import FeedConfig
from bot.opml import OPMLError, export_opml, normalise_lang, parse_opml

FEEDS = [
    {"url": "https://news.example.org/rss.xml", "name": "Example News", "lang": "en"},
    {"url": "https://vestnik.example.kz/rss.xml", "name": "Степной вестник", "lang": "ru"},
    {"url": "https://zharshy.example.kz/rss.xml", "name": "Дала жаршысы", "lang": "kk"},
    {"url": "https://wire.example.org/feed?lang=en&section=asia", "name": "Wire <Asia> & \"friends\"",
     "lang": "en"},
]


def by_url(feed: dict) -> str:
    return feed["url"]


def opml(body: str, head: str = "<head><title>t</title></head>") -> bytes:
    prolog = '<?xml version="1.0" encoding="utf-8"?>\n'
    return f'{prolog}<opml version="2.0">{head}<body>{body}</body></opml>'.encode()


@pytest.mark.parametrize("group_by_lang", [True, False])
def test_round_trip_keeps_every_feed_name_and_language(group_by_lang):
    data = export_opml(FEEDS, group_by_lang=group_by_lang)
    back = parse_opml(data, default_lang="ru")  # languages come from the document, not the default
    assert sorted(back, key=by_url) == sorted(FEEDS, key=by_url)
    if not group_by_lang:
        assert back == FEEDS  # a flat export keeps the order too


def test_export_is_opml_2_with_a_head_and_rss_outlines():
    now = datetime(2026, 3, 9, 4, 20, tzinfo=timezone.utc)
    root = SafeET.fromstring(export_opml(FEEDS, title="My feeds", now=now))
    assert root.tag == "opml" and root.get("version") == "2.0"
    assert root.findtext("head/title") == "My feeds"
    assert root.findtext("head/dateCreated") == "Mon, 09 Mar 2026 04:20:00 +0000"
    outlines = [o for o in root.iter("outline") if o.get("xmlUrl")]
    assert {o.get("type") for o in outlines} == {"rss"}
    assert sorted(o.get("xmlUrl") for o in outlines) == sorted(f["url"] for f in FEEDS)
    folders = [o.get("text") for o in root.find("body")]
    assert folders == ["English", "Russian", "Kazakh"]


def test_export_accepts_config_and_store_objects():
    feeds = [FeedConfig(url=f["url"], lang=f["lang"], name=f["name"]) for f in FEEDS]
    assert sorted(parse_opml(export_opml(feeds)), key=by_url) == sorted(FEEDS, key=by_url)


def test_nested_folders_any_depth_languages_inherited_and_duplicates_once():
    data = opml("""
      <outline text="News">
        <outline text="Kazakhstan" language="kk">
          <outline text="Egemen" type="rss" xmlUrl="https://egemen.example.kz/rss"/>
          <outline text="Deeper">
            <outline text="Vestnik" type="rss" xmlUrl="https://vestnik.example.kz/rss" language="ru-RU"/>
            <outline text="Egemen again" type="rss" xmlUrl="https://egemen.example.kz/rss"/>
          </outline>
        </outline>
        <outline title="Wire" type="rss" xmlUrl="https://wire.example.org/rss"/>
      </outline>
      <outline type="rss" xmlUrl="http://bare.example.org/feed"/>
      <outline text="A link, not a feed" type="link" url="https://example.org/"/>
    """)
    assert parse_opml(data, default_lang="en") == [
        {"url": "https://egemen.example.kz/rss", "name": "Egemen", "lang": "kk"},
        {"url": "https://vestnik.example.kz/rss", "name": "Vestnik", "lang": "ru"},
        {"url": "https://wire.example.org/rss", "name": "Wire", "lang": "en"},
        {"url": "http://bare.example.org/feed", "name": "bare.example.org", "lang": "en"},
    ]


@pytest.mark.parametrize("default", ["en", "ru", "kk"])
def test_the_callers_default_applies_where_nothing_is_declared(default):
    data = opml('<outline text="X" xmlUrl="https://x.example.org/rss"/>')
    assert parse_opml(data, default_lang=default)[0]["lang"] == default


@pytest.mark.parametrize("value,expected", [
    ("en", "en"), ("EN-us", "en"), ("ru_RU", "ru"), ("Russian", "ru"), ("kk", "kk"), ("kk-KZ", "kk"),
    ("kz", "kk"), ("Kazakh", "kk"), ("қазақша", "kk"), ("", None), ("  ", None),
])
def test_language_attribute_forms(value, expected):
    assert normalise_lang(value) == expected


def test_opml_1_without_head_and_empty_body_is_fine():
    assert parse_opml(b'<opml version="1.0"><body/></opml>') == []


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE opml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<opml version="2.0"><head/><body><outline text="&xxe;" xmlUrl="https://x.example.org/rss"/></body></opml>"""

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE opml [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">]>
<opml version="2.0"><head/><body><outline text="&f;" xmlUrl="https://x.example.org/rss"/></body></opml>"""


@pytest.mark.parametrize("data,message", [
    (b"", "document is empty"),
    (b"   \n", "document is empty"),
    (b"<opml><body><outline text='x'></body></opml>", "not well-formed XML at line 1"),
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not well-formed XML"),
    (b"<html><body><a href='https://x.example.org'>x</a></body></html>", "root element is <html>"),
    (b'<rss version="2.0"><channel/></rss>', "root element is <rss>"),
    (b'<opml version="2.0"><head><title>t</title></head></opml>', "has no <body>"),
    (XXE, "declares a DTD or entities"),
    (LAUGHS, "declares a DTD or entities"),
    (opml('<outline text="Bad" xmlUrl="javascript:alert(1)"/>'),
     "outline 'Bad': xmlUrl must be an http or https"),
    (opml('<outline text="Folder"><outline text="Local" xmlUrl="file:///etc/passwd"/></outline>'),
     "outline 'Folder' / 'Local': xmlUrl must be"),
    (opml('<outline text="German" language="de" xmlUrl="https://de.example.org/rss"/>'),
     "outline 'German': language 'de' is not one of en, ru, kk"),
])
def test_unusable_documents_raise_a_clear_error(data, message):
    with pytest.raises(OPMLError, match="^opml: ") as info:
        parse_opml(data)
    assert message in str(info.value)


def test_xxe_never_reads_the_file():
    with pytest.raises(OPMLError) as info:
        parse_opml(XXE)
    assert "root:" not in str(info.value)


def test_oversized_document_is_refused_before_parsing():
    big = opml("<outline text='x'/>" * 1000)
    with pytest.raises(OPMLError, match="more than the 1000-byte limit"):
        parse_opml(big, max_bytes=1000)


def test_folders_nested_absurdly_deep_are_refused():
    data = opml("<outline text='f'>" * 40 + "</outline>" * 40)
    with pytest.raises(OPMLError, match="nested more than"):
        parse_opml(data)


def test_bad_default_language_is_a_programming_error():
    with pytest.raises(ValueError, match="default_lang"):
        parse_opml(opml(""), default_lang="de")


@pytest.mark.parametrize("feed,message", [
    ({"url": "ftp://x.example.org/rss", "name": "x", "lang": "en"}, "no http or https URL"),
    ({"url": "https://x.example.org/rss", "name": "x", "lang": "de"}, "language 'de'"),
])
def test_export_refuses_feeds_it_cannot_describe(feed, message):
    with pytest.raises(OPMLError, match=message):
        export_opml([feed])


def test_export_drops_characters_xml_cannot_carry():
    feed = {"url": "https://x.example.org/rss", "name": "Bell\x07 and\x00 null", "lang": "en"}
    assert parse_opml(export_opml([feed]))[0]["name"] == "Bell and null"


names = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
                min_size=1, max_size=40).map(
    lambda s: " ".join(s.split())).filter(bool)
feeds_strategy = st.lists(
    st.fixed_dictionaries({
        "url": st.from_regex(r"https://[a-z]{1,12}\.example\.org/[a-z0-9/_-]{0,20}", fullmatch=True),
        "name": names,
        "lang": st.sampled_from(["en", "ru", "kk"]),
    }),
    max_size=12, unique_by=lambda f: f["url"],
)


@settings(max_examples=60, deadline=None)
@given(feeds=feeds_strategy, group=st.booleans())
def test_round_trip_property(feeds, group):
    back = parse_opml(export_opml(feeds, group_by_lang=group))
    if group:  # a grouped export lists the feeds language by language
        assert sorted(back, key=by_url) == sorted(feeds, key=by_url)
    else:
        assert back == feeds
