"""Config loading: every error names the key and what is wrong, and the CLI exits cleanly."""

import subprocess
import sys
from pathlib import Path

import pytest

from bot import config
from bot.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent

GOOD_FEED = {"url": "https://example.org/rss.xml", "lang": "en", "name": "Example"}


def raw(**sections):
    base = {"feeds": [dict(GOOD_FEED)], "topics": []}
    base.update(sections)
    return base


def test_shipped_config_is_valid():
    cfg = config.load(REPO / "config.toml", env={})
    assert len(cfg.feeds) >= 12
    assert {f.lang for f in cfg.feeds} == {"en", "ru", "kk"}
    assert {t.id for t in cfg.topics} >= {"kz-unrest", "csto-deployment", "internet-shutdown"}
    assert cfg.telegram.token is None


def test_defaults_and_token_from_environment(tmp_path):
    cfg = config.from_dict(raw(), path=tmp_path / "c.toml", env={"TELEGRAM_BOT_TOKEN": "123:abc"})
    assert cfg.telegram.token == "123:abc"
    assert cfg.poll.interval_seconds == 300
    assert cfg.digest.time == "08:00" and cfg.digest.timezone == "Asia/Almaty"
    assert cfg.translation.provider == "google" and cfg.translation.target == "en"
    assert cfg.storage.path == tmp_path / "data/newsbot.db"  # relative to the config file
    assert "123:abc" not in repr(cfg)


FEEDS = [dict(GOOD_FEED, url=f"https://example.org/{i}.xml") for i in range(3)]


@pytest.mark.parametrize("raw_config, message", [
    (raw(feeds=FEEDS + [dict(GOOD_FEED, lang="de")]), "feeds[3].lang: must be one of en, ru, kk"),
    (raw(feeds=[dict(GOOD_FEED, url="ftp://example.org/x")]), "feeds[0].url: must be an http or https URL"),
    (raw(feeds=[{"lang": "en"}]), "feeds[0].url: is required"),
    (raw(feeds=[GOOD_FEED, GOOD_FEED]), "feeds[1].url: duplicate feed URL (also feeds[0])"),
    (raw(feeds=[dict(GOOD_FEED, colour="red")]), "feeds[0].colour: unknown key"),
    (raw(feeds=[dict(GOOD_FEED, interval_seconds=0)]), "feeds[0].interval_seconds: must be greater than 0"),
    (raw(poll={"interval_seconds": "often"}), "poll.interval_seconds: must be an integer"),
    (raw(poll={"interval_seconds": -5}), "poll.interval_seconds: must be greater than 0"),
    (raw(poll={"intervl_seconds": 5}), "poll.intervl_seconds: unknown key"),
    (raw(digest={"time": "8am"}), "digest.time: must be a time as HH:MM"),
    (raw(digest={"time": "24:00"}), "digest.time: must be a time as HH:MM"),
    (raw(digest={"timezone": "Mars/Olympus"}), "digest.timezone: unknown time zone"),
    (raw(translation={"provider": "babelfish"}), "translation.provider: must be one of google, libre"),
    (raw(translation={"target": "fr"}), "translation.target: must be one of en, ru, kk"),
    (raw(translation={"provider": "libre"}), "translation.url: must name the LibreTranslate server"),
    (raw(translation={"provider": "deepl"}), "translation.api_key_env: must name the environment variable"),
    (raw(telegram={"admins": ["alice"]}), "telegram.admins[0]: must be a chat id"),
    (raw(telegram={"base_url": "not a url"}), "telegram.base_url: must be an http or https URL"),
    (raw(storage={"path": 5}), "storage.path: must be a string"),
    (raw(feeds={"url": "x"}), "feeds: must be an array of tables"),
    (raw(extra={}), "extra: unknown key"),
    (raw(topics=[{"id": "Bad Id!"}]), "topics[0].id:"),
])
def test_errors_name_the_key(tmp_path, raw_config, message):
    with pytest.raises(ConfigError) as err:
        config.from_dict(raw_config, path=tmp_path / "c.toml", env={})
    assert str(err.value).startswith(message), str(err.value)


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[poll\ninterval_seconds = 3", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        config.load(bad)


def _check(args, env=None, cwd=None):
    env = {"PATH": "/usr/bin:/bin", **(env or {})}
    return subprocess.run([sys.executable, "-m", "bot", "check", *args], capture_output=True, text=True,
                          env=env, cwd=cwd or REPO, timeout=60)


def test_check_reports_the_key_without_a_traceback(tmp_path):
    bad = tmp_path / "config.toml"
    bad.write_text('[[feeds]]\nurl = "https://example.org/a.xml"\nlang = "xx"\n', encoding="utf-8")
    result = _check(["--config", str(bad)], env={"PYTHONPATH": str(REPO)})
    assert result.returncode != 0
    assert "feeds[0].lang: must be one of en, ru, kk" in result.stderr
    assert "Traceback" not in result.stderr


def test_bot_config_environment_chooses_the_file(tmp_path):
    good = tmp_path / "other.toml"
    good.write_text('[translation]\nprovider = "none"\n[[feeds]]\nurl = "https://example.org/a.xml"\nlang = "kk"\n',
                    encoding="utf-8")
    result = _check([], env={"BOT_CONFIG": str(good), "PYTHONPATH": str(REPO)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "other.toml: ok (1 feeds" in result.stdout


def test_every_bad_key_of_a_section_and_every_unknown_name_is_reported(tmp_path):
    broken = raw(digest={"time": "25:00", "timezone": "Mars/Olympus", "colour": "red"},
                 telegram={"base_url": "ftp://x", "admins": ["abc"]}, pol={"interval_seconds": 5}, storag={})
    with pytest.raises(ConfigError) as err:
        config.from_dict(broken, path=tmp_path / "c.toml", env={})
    keys = [e.key for e in err.value.errors]
    assert keys == ["pol", "storag", "telegram.base_url", "telegram.admins[0]",
                    "digest.colour", "digest.time", "digest.timezone"]
    assert len(str(err.value).splitlines()) == len(keys)


def test_a_shipped_topic_named_by_id_alone_gets_the_shipped_rules(tmp_path):
    cfg = config.from_dict(raw(topics=[{"id": "csto-deployment", "name": "Troops"}, {"id": "kz-unrest"}]),
                           path=tmp_path / "c.toml", env={})
    shipped = {t.id: t for t in config.load(REPO / "config.toml", env={}).topics}
    csto, unrest = cfg.topics
    assert csto.name == "Troops"  # the reader-facing name is the config's own
    assert csto.groups == shipped["csto-deployment"].groups and csto.groups
    assert unrest.expr == shipped["kz-unrest"].expr


def test_a_file_without_topics_gets_the_shipped_ones_and_an_empty_list_means_none(tmp_path):
    shipped = config.load(REPO / "config.toml", env={}).topics
    bare = raw()
    del bare["topics"]
    cfg = config.from_dict(bare, path=tmp_path / "c.toml", env={})
    assert cfg.default_topics and cfg.topics == shipped
    assert [t.id for t in cfg.topics][:3] == ["kz-unrest", "csto-deployment", "internet-shutdown"]
    none = config.from_dict(raw(topics=[]), path=tmp_path / "c.toml", env={})
    assert none.topics == () and not none.default_topics
    # `check` says which topics apply when the file names none
    short = tmp_path / "short.toml"
    short.write_text('[translation]\nprovider = "none"\n[[feeds]]\nurl = "https://example.org/a.xml"\nlang = "en"\n',
                     encoding="utf-8")
    result = _check(["--config", str(short)], env={"PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert f"ok (1 feeds, {len(shipped)} topics" in result.stdout
    assert "the shipped topics apply (kz-unrest, csto-deployment, internet-shutdown" in result.stdout


def test_topic_names_by_language_are_validated_and_come_with_the_shipped_rules(tmp_path):
    cfg = config.from_dict(raw(topics=[{"id": "kz-unrest"}, {"id": "csto-deployment", "name": "Troops"},
                                       {"id": "own", "name": "Floods", "names": {"ru": " Паводки ", "kk": "Су тасқыны"}}]),
                           path=tmp_path / "c.toml", env={})
    unrest, csto, own = cfg.topics
    assert unrest.name_in("ru") == "Беспорядки в Казахстане" and unrest.name_in("en") == "Unrest in Kazakhstan"
    assert csto.name_in("ru") == "Troops"  # a name of one's own: the shipped translations are not kept
    assert (own.name_in("ru"), own.name_in("kk"), own.name_in("en")) == ("Паводки", "Су тасқыны", "Floods")
    for names, key, problem in [({"de": "Unruhen"}, "topics[0].names.de", "must be one of en, ru, kk"),
                                ({"ru": "  "}, "topics[0].names.ru", "must be a non-empty string"),
                                ("Беспорядки", "topics[0].names", "must be a table of names by language")]:
        with pytest.raises(ConfigError) as err:
            config.from_dict(raw(topics=[{"id": "own", "name": "Floods", "names": names}]),
                             path=tmp_path / "c.toml", env={})
        assert err.value.key == key and err.value.problem.startswith(problem)


def test_every_problem_in_the_file_is_reported_at_once(tmp_path):
    broken = raw(feeds=[dict(GOOD_FEED, lang="de"), dict(GOOD_FEED, url="https://example.org/2.xml"),
                        {"lang": "en"}, dict(GOOD_FEED, url="https://example.org/2.xml")],
                 poll={"interval_seconds": -5}, digest={"timezone": "Mars/Olympus"},
                 topics=[{"id": "Bad Id!"}])
    with pytest.raises(ConfigError) as err:
        config.from_dict(broken, path=tmp_path / "c.toml", env={})
    found = [(e.key, e.problem.split(" (")[0].split(",")[0]) for e in err.value.errors]
    assert found[:3] == [("poll.interval_seconds", "must be greater than 0"),
                         ("digest.timezone", "unknown time zone 'Mars/Olympus'"),
                         ("feeds[0].lang", "must be one of en")]
    assert found[3:5] == [("feeds[2].url", "is required"), ("feeds[3].url", "duplicate feed URL")]
    assert [k for k, _ in found[5:]] == ["topics[0].id"]
    assert str(err.value).splitlines()[0] == "poll.interval_seconds: must be greater than 0, not -5"
    assert len(str(err.value).splitlines()) == 6
    # the command line prints them all, a line each, and no traceback
    path = tmp_path / "config.toml"
    path.write_text('[poll]\ninterval_seconds = -5\n[[feeds]]\nurl = "ftp://example.org/a"\nlang = "en"\n'
                    '[[feeds]]\nurl = "https://example.org/b.xml"\nlang = "xx"\n', encoding="utf-8")
    result = _check(["--config", str(path)], env={"PYTHONPATH": str(REPO)})
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "config error: poll.interval_seconds: must be greater than 0, not -5",
        "config error: feeds[0].url: must be an http or https URL, not 'ftp://example.org/a'",
        "config error: feeds[1].lang: must be one of en, ru, kk",
    ]


def test_every_problem_of_one_feed_is_reported(tmp_path):
    broken = raw(feeds=[{"url": "ftp://example.org/a", "lang": "de", "nmae": "typo", "interval_seconds": 0},
                        {"name": 5}])
    with pytest.raises(ConfigError) as err:
        config.from_dict(broken, path=tmp_path / "c.toml", env={})
    assert [(e.key, e.problem.split(",")[0]) for e in err.value.errors] == [
        ("feeds[0].nmae", "unknown key (allowed: interval_seconds"),
        ("feeds[0].url", "must be an http or https URL"),
        ("feeds[0].lang", "must be one of en"),
        ("feeds[0].interval_seconds", "must be greater than 0"),
        ("feeds[1].url", "is required"),
        ("feeds[1].lang", "is required"),
        ("feeds[1].name", "must be a string"),
    ]
