"""The command line as operators and other tools use it: real processes, real files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest

from tests.feedserver import FeedServer, Route
from tests.htmlcheck import problems

REPO = Path(__file__).resolve().parent.parent
VERBS = ("run", "poll", "digest", "check", "demo", "status", "feeds", "trend")


def cli(*args, cwd=None, env=None, timeout=120, stdin=None):
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    full_env.pop("BOT_CONFIG", None)
    full_env.pop("TELEGRAM_BOT_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=cwd or REPO,
                          env=full_env, timeout=timeout, input=stdin)


def test_help_lists_every_verb_with_examples():
    result = cli("--help")
    assert result.returncode == 0
    for verb in VERBS:
        assert re.search(rf"^\s+{verb}\s", result.stdout, re.M), verb
        assert f"python -m bot {verb}" in result.stdout or verb == "run" and "bot run" in result.stdout
    for verb in VERBS:
        sub = cli(verb, "--help")
        assert sub.returncode == 0, verb
        assert "example:" in sub.stdout, verb


def test_no_verb_is_a_usage_error():
    assert cli().returncode == 2


def test_demo_runs_offline_and_folds_languages():
    result = cli("demo", env={"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "new items" in out and "matched a topic" in out
    # one event reported in the three languages is one story
    assert re.search(r"story \d+ · 3 report\(s\) · EN KK RU", out), out[:2000]
    digest = out.split("(Telegram HTML):", 1)[1].strip()
    for message in digest.split("\n-----\n"):
        assert problems(message) == [], message[:500]


def rss(items) -> bytes:
    now = datetime.now(timezone.utc)
    body = "".join(
        f"<item><guid>{g}</guid><title>{t}</title><link>https://news.example.kz/{g}?utm_source=x</link>"
        f"<description>{d}</description><pubDate>{format_datetime(now - timedelta(hours=1))}</pubDate></item>"
        for g, t, d in items)
    return f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>T</title>{body}</channel></rss>".encode()


def topics_toml() -> str:
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    return text[text.index("[[topics]]"):]


@pytest.fixture
def polled(tmp_path):
    with FeedServer() as server:
        server.route("/en.xml", Route(body=rss([
            ("e1", "CSTO sends peacekeeping troops to Kazakhstan", "Units of the CSTO landed in Almaty."),
            ("e2", "Astana hosts a chess festival", "Players from twelve countries."),
        ])))
        server.route("/ru.xml", Route(body=rss([
            ("r1", "ОДКБ направила миротворцев в Казахстан", "Подразделения ОДКБ прибыли в Алматы."),
        ])))
        server.route("/broken.xml", Route(status=500, body=b"oops"))
        cfg = tmp_path / "config.toml"
        cfg.write_text(
            '[storage]\npath = "bot.db"\n[translation]\nprovider = "none"\n'
            + "".join(f'[[feeds]]\nurl = "{server.url(p)}"\nlang = "{lang}"\nname = "{name}"\n'
                      for p, lang, name in (("/en.xml", "en", "Wire EN"), ("/ru.xml", "ru", "Лента"),
                                            ("/broken.xml", "en", "Broken")))
            + topics_toml(), encoding="utf-8")
        result = cli("poll", "--config", str(cfg), "--json", cwd=tmp_path)
        yield cfg, result, server


def test_poll_json_contract(polled):
    cfg, result, _ = polled
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3
    for line in lines:
        assert set(line) == {"id", "feed", "lang", "title", "url", "published", "topics", "story", "title_en"}
        assert isinstance(line["id"], int) and isinstance(line["story"], int)
        assert isinstance(line["topics"], list)
        assert line["published"].endswith("Z")
        assert "utm_source" not in line["url"]
    by_title = {line["title"]: line for line in lines}
    csto_en = by_title["CSTO sends peacekeeping troops to Kazakhstan"]
    csto_ru = by_title["ОДКБ направила миротворцев в Казахстан"]
    chess = by_title["Astana hosts a chess festival"]
    assert csto_en["topics"] == ["csto-deployment"] and csto_ru["topics"] == ["csto-deployment"]
    assert chess["topics"] == []
    assert csto_en["story"] == csto_ru["story"] != chess["story"]  # one event across languages
    assert csto_en["lang"] == "en" and csto_ru["lang"] == "ru"
    assert csto_en["feed"] == "Wire EN" and csto_ru["feed"] == "Лента"
    assert csto_en["title_en"] == csto_en["title"]  # already in the reader language
    assert csto_ru["title_en"] is None  # translation is off: none could be made


def test_poll_again_reports_nothing_new_and_shows_a_summary(polled):
    cfg, _, server = polled
    again = cli("poll", "--config", str(cfg), "--json", cwd=cfg.parent)
    assert again.returncode == 0 and again.stdout == ""
    summary = cli("poll", "--config", str(cfg), cwd=cfg.parent)
    assert summary.returncode == 0
    assert "Broken" in summary.stdout and "HTTP 500" in summary.stdout
    assert "3 feeds, 0 new items" in summary.stdout
    assert "[3/3]" in summary.stderr  # progress while it works


def test_poll_summary_tells_apart_unnamed_feeds_of_one_host(tmp_path):
    with FeedServer() as server:
        server.route("/world.xml", Route(body=rss([("w1", "Grain prices steady", "Markets were calm.")])))
        server.route("/region.xml", Route(status=404, body=b"no such feed"))
        cfg = tmp_path / "config.toml"
        cfg.write_text('[storage]\npath = "bot.db"\n[translation]\nprovider = "none"\n'
                       + "".join(f'[[feeds]]\nurl = "{server.url(p)}"\nlang = "en"\n'
                                 for p in ("/world.xml", "/region.xml")), encoding="utf-8")
        result = cli("poll", "--config", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:-1]}
    assert set(rows) == {"127.0.0.1/world.xml", "127.0.0.1/region.xml"}
    assert "HTTP 200" in rows["127.0.0.1/world.xml"] and "HTTP 404" in rows["127.0.0.1/region.xml"]
    assert "127.0.0.1/region.xml: error: fetch: HTTP 404" in result.stderr  # the progress line
    assert "feed failed" not in result.stderr  # and not a log line as well
    with FeedServer() as server:  # with --json there is no progress: the log line says it
        server.route("/region.xml", Route(status=404, body=b"no such feed"))
        cfg.write_text(f'[storage]\npath = "bot.db"\n[[feeds]]\nurl = "{server.url("/region.xml")}"\nlang = "en"\n',
                       encoding="utf-8")
        result = cli("poll", "--config", str(cfg), "--json", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout == ""
    assert re.search(r"WARNING bot.pipeline: feed failed .*region.xml.* error=fetch: HTTP 404", result.stderr)


def test_poll_with_no_feeds_says_how_to_add_one(tmp_path):
    (tmp_path / "config.toml").write_text('[storage]\npath = "bot.db"\n', encoding="utf-8")
    result = cli("poll", "--config", str(tmp_path / "config.toml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "0 feeds, 0 new items" in result.stdout
    assert "poll: no active feeds: add [[feeds]] to the config, or `python -m bot feeds add URL" in result.stderr


def test_digest_dry_run_prints_valid_html_and_sends_nothing(polled):
    cfg, _, _ = polled
    result = cli("digest", "--config", str(cfg), "--dry-run", cwd=cfg.parent)
    assert result.returncode == 0, result.stderr
    messages = result.stdout.rstrip("\n").split("\n-----\n")
    assert any("peacekeeping troops" in m for m in messages)
    assert "chess" not in result.stdout
    for m in messages:
        assert problems(m) == [], m
    unknown = cli("digest", "--config", str(cfg), "--dry-run", "--chat", "999", cwd=cfg.parent)
    assert unknown.returncode == 1 and "no subscriber with chat id 999" in unknown.stderr


def test_status_reports_feeds_and_exits_1_when_the_service_is_not_running(polled):
    cfg, _, _ = polled
    result = cli("status", "--config", str(cfg), cwd=cfg.parent)
    assert result.returncode == 1
    assert "never run" in result.stdout
    assert "failing: " in result.stdout and "Broken" in result.stdout
    as_json = json.loads(cli("status", "--config", str(cfg), "--json", cwd=cfg.parent).stdout)
    assert as_json["healthy"] is False and as_json["items"] == 3 and as_json["feeds"] == 3


def test_feeds_verbs_round_trip_opml(polled, tmp_path):
    cfg, _, server = polled
    listed = cli("feeds", "--config", str(cfg), "list", cwd=cfg.parent)
    assert listed.returncode == 0 and listed.stdout.count("\n") == 3
    # --config after the action works too, as it does after every other verb
    assert cli("feeds", "list", "--config", str(cfg), cwd=cfg.parent).stdout == listed.stdout
    exported = tmp_path / "feeds.opml"
    assert cli("feeds", "--config", str(cfg), "export", "--out", str(exported), cwd=cfg.parent).returncode == 0
    assert b"<opml" in exported.read_bytes() and server.url("/ru.xml").encode() in exported.read_bytes()
    removed = cli("feeds", "--config", str(cfg), "remove", server.url("/broken.xml"), cwd=cfg.parent)
    assert removed.returncode == 0 and "retired" in removed.stdout
    missing = cli("feeds", "--config", str(cfg), "remove", "https://nowhere.example/x", cwd=cfg.parent)
    assert missing.returncode == 1 and "no feed" in missing.stderr
    # a private address is refused unless the config allows it
    server.route("/new.xml", Route(body=rss([("n1", "A new feed item", "text")])))
    refused = cli("feeds", "--config", str(cfg), "add", server.url("/new.xml"), "--lang", "en", cwd=cfg.parent)
    assert refused.returncode == 1 and "internal address" in refused.stderr
    text = cfg.read_text(encoding="utf-8").replace(
        '[translation]', '[telegram]\nallow_private_feed_urls = true\n[translation]')
    cfg.write_text(text, encoding="utf-8")
    added = cli("feeds", "--config", str(cfg), "add", server.url("/new.xml"), "--lang", "en", cwd=cfg.parent)
    assert added.returncode == 0, added.stderr
    assert "1 entries" in added.stdout
    bad = cli("feeds", "--config", str(cfg), "add", server.url("/broken.xml"), "--lang", "en", cwd=cfg.parent)
    assert bad.returncode == 1 and "HTTP 500" in bad.stderr


def test_trend_writes_a_png(polled, tmp_path):
    cfg, _, _ = polled
    out = tmp_path / "trend.png"
    result = cli("trend", "--config", str(cfg), "--days", "7", "--out", str(out), cwd=cfg.parent)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    unknown = cli("trend", "--config", str(cfg), "--topic", "nope", cwd=cfg.parent)
    assert unknown.returncode == 1 and "unknown topic" in unknown.stderr


@pytest.mark.parametrize("where", ["a directory", "not a database"])
def test_a_storage_path_that_cannot_be_a_database_is_one_clear_line(tmp_path, where):
    target = tmp_path / "data"
    if where == "a directory":
        target.mkdir()
    else:
        target.write_text("name,score\nalice,3\n" * 200, encoding="utf-8")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[storage]\npath = "{target}"\n[translation]\nprovider = "none"\n'
                   '[[feeds]]\nurl = "http://127.0.0.1:9/feed.xml"\nlang = "en"\n', encoding="utf-8")
    for verb in (["poll"], ["status"], ["digest", "--dry-run"]):
        result = cli(*verb, "--config", str(cfg))
        assert result.returncode == 1, (verb, result.stderr)
        assert result.stderr.strip().splitlines()[-1].startswith(f"error: storage: cannot open the database {target}")
        assert "Traceback" not in result.stderr
    if where == "not a database":
        assert target.read_text(encoding="utf-8").startswith("name,score")  # left as it was


def test_log_lines_never_carry_the_token_or_the_translator_key(tmp_path):
    import logging

    from bot.__main__ import _RedactingFormatter

    secrets = ["123456:bot-token-value"]
    formatter = _RedactingFormatter("%(message)s", secrets)
    secrets.append("deepl-key-0123456789:fx")  # read with the config, after logging was set up
    record = logging.LogRecord("x", logging.ERROR, __file__, 1,
                               "GET https://api.example/bot123456:bot-token-value/x?auth_key=%s failed",
                               ("deepl-key-0123456789:fx",), None)
    assert formatter.format(record) == "GET https://api.example/bot<secret>/x?auth_key=<secret> failed"


def test_poll_json_into_a_reader_that_stops_early_still_completes_the_cycle(tmp_path):
    """`poll --json | head -1`: the lines are written as items are finished; when the reader goes
    away the rest are dropped quietly, and the cycle still stores and files everything."""
    items = [(f"g{n}", f"Farmers in Kostanay region report harvest number {n}", f"Grain story {n}.")
             for n in range(150)]
    with FeedServer() as server:
        server.route("/en.xml", Route(body=rss(items)))
        cfg = tmp_path / "config.toml"
        cfg.write_text('[storage]\npath = "bot.db"\n[translation]\nprovider = "none"\n'
                       f'[[feeds]]\nurl = "{server.url("/en.xml")}"\nlang = "en"\nname = "Wire"\n'
                       + topics_toml(), encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("BOT_CONFIG", None)
        proc = subprocess.Popen([sys.executable, "-m", "bot", "poll", "--config", str(cfg), "--json"],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = json.loads(proc.stdout.readline())
        proc.stdout.close()  # as `head -1` does
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err and b"BrokenPipe" not in err
    assert isinstance(first["story"], int)
    from bot.store import Store

    with Store(tmp_path / "bot.db") as store:
        assert store.count("items") == 150
        assert store.count("items", "WHERE story_id IS NULL") == 0
