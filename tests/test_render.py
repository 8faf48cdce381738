"""Rendering: alerts and digests are valid Telegram HTML, escaped, split on story boundaries."""

from __future__ import annotations

import re
import string
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import i18n, render
from bot.render import StoryLine
from tests import htmlcheck


def story(headline="Protest in Almaty", **kw) -> StoryLine:
    base = dict(headline=headline, headline_lang="en", original_lang="en", url="https://example.kz/a",
                sources=["Tengrinews"], langs=["en"], topics=["Unrest in Kazakhstan"], why=["protest"])
    base.update(kw)
    return StoryLine(**base)


def story_lines(html: str) -> list[str]:
    """The HTML lines that start a story (a story's first line begins with the bullet)."""
    return [line for line in html.split("\n") if line.startswith("• ")]


# -- the checker itself must be able to fail -------------------------------------------


@pytest.mark.parametrize("html, problem", [
    ("<p>x</p>", "unsupported start tag"),
    ("a < b", "bare '<'"),
    ("<b>x", "unclosed"),
    ("<b>x</i>", "unmatched end tag"),
    ("x</b>", "unexpected end tag"),
    ("Tom & Jerry", "bare '&'"),
    ("&nbsp;", "unknown entity"),
    ('<a href="javascript:alert(1)">x</a>', "not an http(s) URL"),
    ("<a>x</a>", "without href"),
    ('<span class="x">y</span>', "tg-spoiler"),
    ('<b onclick="x">y</b>', "not allowed"),
    ('<a href="https://a.kz"><a href="https://b.kz">x</a></a>', "link inside a link"),
    ("<code><b>x</b></code>", "inside <code>"),
    ("", "empty"),
    ("  \n ", "empty"),
    ("x" * 4097, "too long"),
    ("a\u202eb", "bidi"),
    ("a\x07b", "control"),
    ("a\ud800b", "UTF-8"),
    ("<b>x</b>" * 101, "entities"),
])
def test_checker_finds(html, problem):
    found = htmlcheck.problems(html)
    assert any(problem.lower() in p.lower() for p in found), found


@pytest.mark.parametrize("html, visible", [
    ("<b>bold</b> &amp; <i>it</i>", "bold & it"),
    ('<a href="https://x.kz/?a=1&amp;b=&quot;2">link</a>', "link"),
    ('<pre><code class="language-python">x = 1</code></pre>', "x = 1"),
    ('<span class="tg-spoiler">s</span> &lt;tag&gt;', "s <tag>"),
    ("x" * 4096, "x" * 4096),
    ("<blockquote expandable>q</blockquote>", "q"),
])
def test_checker_accepts(html, visible):
    assert htmlcheck.check(html) == visible


# -- escaping, links and the story line --------------------------------------------------------


@pytest.mark.parametrize("url, linked", [
    ("https://example.kz/a?b=1&c=2", True),
    ("http://example.kz", True),
    ("HTTPS://EXAMPLE.KZ/x", True),
    ("javascript:alert(1)", False),
    ("JaVaScRiPt:alert(1)", False),
    ("data:text/html,<script>", False),
    ("ftp://example.kz/file", False),
    ("//example.kz/x", False),
    ("https://", False),
    ("https://exa mple.kz", False),
    ("https://example.kz/\u202egnp.exe", False),
    ("http://[::1", False),
    (None, False),
    ("", False),
])
def test_only_http_links(url, linked):
    html = render.link("title", url)
    assert ("<a " in html) is linked
    htmlcheck.check(html)


def test_hostile_headline_is_escaped_and_shown_as_written():
    s = story('<script>alert("x")</script> & <b>bold</b> &amp;', url='https://x.kz/?q="><script>')
    msg = render.render_alert(s, "en")
    visible = htmlcheck.check(msg.text)
    assert '<script>alert("x")</script> & <b>bold</b> &amp;' in visible
    assert "<script>" not in msg.text


def test_story_line_shows_sources_languages_marker_and_reason():
    s = story("Митинг в Алматы", headline_lang="ru", original_lang="ru", sources=["Reuters", "Tengrinews"],
              langs=["en", "kk"], topics=["Unrest in Kazakhstan"], why=["митинг", "Алматы"])
    visible = htmlcheck.check(render.story_block(s, "en"))
    assert "Reuters, Tengrinews · EN KK" in visible
    assert "[RU]" in visible
    assert "Unrest in Kazakhstan: митинг, Алматы" in visible


@pytest.mark.parametrize("lang, marker", [("en", "translated from RU"), ("ru", "перевод с RU"),
                                          ("kk", "RU тілінен аударылған")])
def test_translated_headline_names_the_original_language(lang, marker):
    s = story("Rally in Almaty", headline_lang=lang, original_lang="ru", translated=True)
    visible = htmlcheck.check(render.render_alert(s, lang).text)
    assert marker in visible
    assert "[RU]" not in visible


def test_headline_in_reader_language_has_no_marker():
    visible = htmlcheck.check(render.story_block(story(), "en"))
    assert "[EN]" not in visible and "translated" not in visible


def test_watch_words_are_named():
    s = story(topics=[], why=["Жаңаөзен"], watchwords=["Zhanaozen"])
    visible = htmlcheck.check(render.story_block(s, "en"))
    assert "your words: Zhanaozen" in visible


def test_alert_keeps_preview_digest_turns_it_off():
    assert render.render_alert(story(), "en").disable_preview is False
    assert all(m.disable_preview for m in render.render_digest([story()], "en", date(2026, 1, 5)))
    assert render.render_empty_digest("en").disable_preview is True


def test_summary_keeps_its_lines_and_is_bounded():
    s = story(summary="First line.\n\n\nSecond <line> & more. " + "word " * 1000)
    visible = htmlcheck.check(render.render_alert(s, "en").text)
    assert "First line.\nSecond <line> & more." in visible
    assert len(visible) < render.MAX_SUMMARY + render.MAX_HEADLINE + 400


# -- digests -------------------------------------------------------------------------------


def test_digest_groups_by_topic_most_important_first():
    stories = [
        story("minor csto", topics=["CSTO"], importance=1),
        story("big unrest", topics=["Unrest"], importance=9),
        story("mid unrest", topics=["Unrest"], importance=5),
        story("mid csto", topics=["CSTO"], importance=4),
    ]
    [msg] = render.render_digest(stories, "en", date(2026, 1, 5))
    visible = htmlcheck.check(msg.text)
    order = [visible.index(x) for x in ("Unrest", "big unrest", "mid unrest", "CSTO", "mid csto", "minor csto")]
    assert order == sorted(order)
    assert "2026-01-05" in visible and "4 stories" in visible


def test_each_story_appears_once_under_its_first_topic():
    s = story("shared", topics=["B topic", "A topic"], importance=3)
    [msg] = render.render_digest([s, story("other", topics=["A topic"], importance=1)], "en")
    assert msg.text.count("shared") == 1
    visible = htmlcheck.check(msg.text)
    assert visible.index("B topic") < visible.index("shared") < visible.index("A topic")


def test_empty_day_digest():
    msgs = render.render_digest([], "ru", date(2026, 1, 5))
    assert len(msgs) == 1
    visible = htmlcheck.check(msgs[0].text)
    assert "2026-01-05" in visible and i18n.t_plain("ru", "digest_empty") in visible


@pytest.mark.parametrize("n, lang, word", [(1, "en", "1 story"), (3, "en", "3 stories"), (1, "ru", "1 история"),
                                           (3, "ru", "3 истории"), (11, "ru", "11 историй"),
                                           (21, "ru", "21 история"), (5, "kk", "5 оқиға")])
def test_digest_counts_in_the_reader_language(n, lang, word):
    msgs = render.render_digest([story(f"s{i}") for i in range(n)], lang)
    assert word in htmlcheck.check(msgs[0].text)


def test_long_digest_splits_between_stories_and_repeats_the_heading():
    stories = [story(f"Headline number {i} " + "x" * 250, url=f"https://example.kz/{i}",
                     sources=[f"Source {j}" for j in range(6)], topics=["Only topic"], why=["a", "b"],
                     importance=100 - i) for i in range(80)]
    msgs = render.render_digest(stories, "en", date(2026, 1, 5))
    assert len(msgs) > 3
    seen = []
    for m in msgs:
        visible = htmlcheck.check(m.text)
        assert len(visible) <= 4096
        for line in story_lines(m.text):  # one whole line per story: headline, sources, reason
            assert "Source 0, Source 1, Source 2, Source 3 +2 · EN · why: Only topic: a, b" in line
        seen.extend(re.findall(r"Headline number (\d+) ", visible))
    assert seen == [str(i) for i in range(80)]  # every story once, in order
    for m in msgs[1:]:
        assert htmlcheck.check(m.text).startswith("Only topic (continued)")


def test_astral_characters_count_twice_toward_the_limit():
    stories = [story("𝕏👍🏽" * 140, sources=["𝔖𝔬𝔲𝔯𝔠𝔢"], why=["𝕏"]) for _ in range(40)]
    msgs = render.render_digest(stories, "en")
    assert len(msgs) > 1
    for m in msgs:
        assert len(htmlcheck.check(m.text).encode("utf-16-le")) // 2 <= 4096
    assert sum(len(story_lines(m.text)) for m in msgs) == 40


def test_small_limit_still_splits_on_story_boundaries():
    stories = [story(f"story {i}", importance=-i) for i in range(10)]
    msgs = render.render_digest(stories, "en", limit=300)
    assert all(len(htmlcheck.check(m.text, limit=300)) <= 300 for m in msgs)
    assert sum(len(story_lines(m.text)) for m in msgs) == 10


def test_update_prefix_is_valid_html_in_every_language():
    for lang in ("en", "ru", "kk"):
        htmlcheck.check(render.update_prefix(lang) + render.render_alert(story(), lang).text)


# -- hostile input, property-based ----------------------------------------------------------

HOSTILE = ["<script>alert(1)</script>", "</b>", "<b>", "<i>", "</a>", '<a href="javascript:x">', "&", "&amp;",
           "&lt;", "&#0;", "&#xD800;", "&nbsp;", '"', "'", "\u202e", "\u2066", "\u200f", "\x00", "\x07", "\x1b",
           "\r\n", "\t", "\ufeff", "\ud800", "\udfff", "𝕏", "👍🏽", "\u0301", "Жаңаөзен", "Алматы", " ", "\n\n",
           "<", ">", "]]>", "<!--", "-->", "<pre>", "<code>", "\u2028", "\x85", "\uffff"]

hostile_text = st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=20)), max_size=12).map("".join)
huge_text = st.builds(lambda s, n: (s or "x") * n, st.sampled_from(HOSTILE + ["word "]), st.integers(2000, 20000))
any_text = st.one_of(hostile_text, hostile_text, huge_text)
urls = st.one_of(
    st.none(),
    st.sampled_from(["https://example.kz/a?x=1&y=2", "http://tengrinews.kz/n/1", "javascript:alert(1)",
                     " JAVASCRIPT:alert(1)", "data:text/html;base64,PHNjcmlwdD4=", "vbscript:x", "ftp://x.kz/",
                     'https://x.kz/"><script>alert(1)</script>', "https://x.kz/\u202eexe", "https://", "http:///x",
                     "https://x.kz/" + "a" * 3000, "tg://resolve?domain=x", "mailto:a@b.kz"]),
    st.text(max_size=40),
    st.text(max_size=40).map(lambda s: "https://example.kz/" + s),
)
langs = st.sampled_from(["en", "ru", "kk", "", "xx", "<b>", "\u202e"])
names = st.lists(any_text, max_size=8)

stories_st = st.builds(
    StoryLine,
    headline=any_text, headline_lang=langs, original_lang=langs, url=urls, sources=names,
    langs=st.lists(langs, max_size=5), topics=st.lists(any_text, max_size=3), why=st.lists(any_text, max_size=8),
    translated=st.booleans(), summary=any_text, watchwords=st.lists(any_text, max_size=3),
    importance=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
)
reader_langs = st.sampled_from(["en", "ru", "kk", "de", ""])


def _expected_headline(s: StoryLine) -> str:
    return render.truncate(render.clean(s.headline), render.MAX_HEADLINE)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(s=stories_st, lang=reader_langs)
def test_hostile_alert_is_valid_and_shows_the_text(s, lang):
    msg = render.render_alert(s, lang)
    visible = htmlcheck.check(msg.text)
    headline = _expected_headline(s)
    if headline:
        assert headline in visible
    for href in re.findall(r'<a href="([^"]*)"', msg.text):
        assert re.match(r"^https?://", href, re.I)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(stories=st.lists(stories_st, max_size=30), lang=reader_langs)
def test_hostile_digest_is_valid_split_and_complete(stories, lang):
    msgs = render.render_digest(stories, lang, date(2026, 1, 5))
    assert msgs
    shown = []
    for m in msgs:
        assert m.disable_preview
        visible = htmlcheck.check(m.text)
        assert len(visible.encode("utf-16-le")) // 2 <= 4096  # also within the limit counted in UTF-16 units
        shown.append(visible)
    assert sum(len(story_lines(m.text)) for m in msgs) == len(stories)
    joined = "\n".join(shown)
    for s in stories:
        headline = _expected_headline(s)
        if headline:
            assert headline in joined


@given(text=any_text)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_escape_round_trips(text):
    cleaned = render.clean(text, single_line=False)
    assert htmlcheck.analyse(render.escape(cleaned) or "x").visible == (cleaned or "x")


# -- the bot's own strings ---------------------------------------------------------------------


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_language_has_every_string_with_the_same_placeholders():
    en = i18n.STRINGS["en"]
    for lang in ("ru", "kk"):
        table = i18n.STRINGS[lang]
        assert set(table) == set(en), (lang, set(table) ^ set(en))
        for key in en:
            assert _placeholders(table[key]) == _placeholders(en[key]), (lang, key)


@pytest.mark.parametrize("lang", ["en", "ru", "kk"])
def test_every_string_is_valid_html_with_hostile_values(lang):
    for key, template in i18n.STRINGS[lang].items():
        values = {name: "<b>&x" for name in _placeholders(template)}
        htmlcheck.check(i18n.t(lang, key, **values))
    htmlcheck.check(i18n.settings_usage(lang))


def test_strings_differ_between_languages():
    for key in ("welcome", "help", "stop_done", "digest_empty"):
        assert len({i18n.STRINGS[lang][key] for lang in ("en", "ru", "kk")}) == 3
