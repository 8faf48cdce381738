"""The bundled demo feeds are well-formed, varied and cover what the demo needs."""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime
from datetime import datetime
from urllib.parse import urlsplit

import pytest
from defusedxml import ElementTree as ET

from bot import samples

ATOM = "{http://www.w3.org/2005/Atom}"


def entries(data: bytes) -> list[dict]:
    """Title, summary, id, link and date of every item, RSS 2.0 or Atom."""
    root = ET.fromstring(data)
    found = []
    if root.tag == "rss":
        for item in root.iter("item"):
            found.append({
                "title": item.findtext("title"), "summary": item.findtext("description"),
                "id": item.findtext("guid"), "link": item.findtext("link"),
                "date": parsedate_to_datetime(item.findtext("pubDate")),
            })
    elif root.tag == f"{ATOM}feed":
        for entry in root.iter(f"{ATOM}entry"):
            found.append({
                "title": entry.findtext(f"{ATOM}title"), "summary": entry.findtext(f"{ATOM}summary"),
                "id": entry.findtext(f"{ATOM}id"), "link": entry.find(f"{ATOM}link").get("href"),
                "date": datetime.fromisoformat(entry.findtext(f"{ATOM}published")),
            })
    else:
        raise AssertionError(f"unexpected root element {root.tag}")
    return found


ALL = samples.sample_feeds()


@pytest.mark.parametrize("feed,data", ALL, ids=[s.file for s, _ in ALL])
def test_each_sample_is_a_feed_of_ten_to_fifteen_dated_items(feed, data):
    items = entries(data)
    assert 10 <= len(items) <= 15
    for it in items:
        assert it["title"] and it["summary"] and it["id"] and it["link"]
        assert it["date"].tzinfo is not None and it["date"].year == 2026
        host = urlsplit(it["link"]).hostname
        assert host.endswith((".example.org", ".example.kz", ".example.net")), host
    assert urlsplit(feed.url).hostname == urlsplit(items[0]["link"]).hostname


def test_ids_and_links_are_unique_across_every_sample():
    ids = [it["id"] for _, data in ALL for it in entries(data)]
    links = [it["link"] for _, data in ALL for it in entries(data)]
    assert len(ids) == len(set(ids))
    assert len(links) == len(set(links))


def test_the_set_covers_three_languages_atom_and_windows_1251():
    assert {s.lang for s, _ in ALL} == {"en", "ru", "kk"}
    assert any(data.lstrip().startswith(b"<?xml") and b"<feed" in data[:200] for _, data in ALL)
    cp1251 = [(s, d) for s, d in ALL if b'encoding="windows-1251"' in d[:60]]
    assert cp1251, "one sample must be windows-1251"
    s, data = cp1251[0]
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert "charset" not in s.content_type  # the prolog must decide
    assert any("Актау" in it["title"] for it in entries(data))  # decoded right by a conforming parser


SCRIPT = {"en": re.compile(r"^[\x20-\x7e’]+$"), "ru": re.compile(r"[А-Яа-яЁё]"),
          "kk": re.compile(r"[ӘәҒғҚқҢңӨөҰұҮүІі]")}


@pytest.mark.parametrize("feed,data", ALL, ids=[s.file for s, _ in ALL])
def test_titles_are_written_in_the_feed_language(feed, data):
    for it in entries(data):
        assert SCRIPT[feed.lang].search(it["title"]), it["title"]


# Names of the things each watch topic is about, per language: the samples must carry
# both real reports and look-alikes (summits, exercises, floods, faster internet).
TOPIC_WORDS = {
    "csto-deployment": {"en": "CSTO", "ru": "ОДКБ", "kk": "ҰҚШҰ"},
    "internet-shutdown": {"en": "internet", "ru": "интернет", "kk": "интернет"},
    "kz-unrest": {"en": "protest", "ru": "протест", "kk": "наразы"},
}


@pytest.mark.parametrize("topic", sorted(TOPIC_WORDS))
def test_every_topic_appears_in_every_language_more_than_once(topic):
    for lang, word in TOPIC_WORDS[topic].items():
        hits = [it for s, data in ALL if s.lang == lang for it in entries(data)
                if word.lower() in (it["title"] + " " + it["summary"]).lower()]
        assert len(hits) >= 2, (topic, lang)


def test_unknown_sample_name_is_a_clear_error():
    with pytest.raises(ValueError, match="no bundled feed named"):
        samples.read_bytes("../config.toml")


def test_index_lists_exactly_the_bundled_files():
    from importlib import resources

    on_disk = {p.name for p in resources.files("bot.samples").iterdir() if p.name.endswith(".xml")}
    assert on_disk == {s.file for s in samples.catalogue()}
