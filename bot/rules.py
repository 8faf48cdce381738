"""Topic rules as written in config.toml, parsed and validated.

(Placeholder shape; the matching work replaces this with the full rule language.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import ConfigError

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class Topic:
    id: str
    name: str
    raw: dict = field(default_factory=dict, compare=False, repr=False)


def parse_topic(raw: dict, where: str) -> Topic:
    topic_id = raw.get("id")
    if not isinstance(topic_id, str) or not _ID.match(topic_id):
        raise ConfigError(f"{where}.id", "must be a short lower-case id such as kz-unrest")
    name = raw.get("name", topic_id)
    if not isinstance(name, str):
        raise ConfigError(f"{where}.name", "must be a string")
    return Topic(id=topic_id, name=name, raw=raw)
