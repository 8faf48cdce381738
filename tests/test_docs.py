"""The README stays true: every CLI verb, config key and module is documented."""

import re
from dataclasses import fields
from pathlib import Path

from bot import __main__ as cli
from bot import config

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_every_cli_verb_is_in_the_readme():
    for verb in cli.VERBS:
        assert f"python -m bot {verb}" in README, f"`python -m bot {verb}` is not documented in README.md"


def test_every_feeds_action_is_in_the_readme():
    parser = cli.build_parser()
    feeds = parser._subparsers._group_actions[0].choices["feeds"]
    actions = feeds._subparsers._group_actions[0].choices
    for action in actions:
        assert re.search(rf"feeds [^\n]*\b{action}\b", README), f"feeds {action} is not in README.md"


def test_every_config_key_is_in_the_reference():
    sections = {
        "storage": config.StorageConfig, "telegram": config.TelegramConfig,
        "translation": config.TranslationConfig, "poll": config.PollConfig, "digest": config.DigestConfig,
        "stories": config.StoriesConfig, "retention": config.RetentionConfig, "delivery": config.DeliveryConfig,
    }
    reference = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for section, cls in sections.items():
        for f in fields(cls):
            if f.name in ("token", "api_key"):
                continue  # from the environment only
            assert re.search(rf"`\[{section}\] [^`]*\b{f.name}\b", reference), f"[{section}] {f.name} undocumented"


def test_every_module_is_in_the_module_map():
    table = README.split("## How it is built", 1)[1].split("\n## ", 1)[0]
    for path in sorted((REPO / "bot").glob("*.py")):
        if path.name == "__init__.py":
            continue
        assert f"`{path.name}`" in table, f"bot/{path.name} is missing from the README's module map"
