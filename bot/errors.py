"""The project's named exceptions. Messages start with the stage that failed."""

from __future__ import annotations


class NewsBotError(Exception):
    """Base class for errors this project raises on purpose."""


class ConfigError(NewsBotError, ValueError):
    """The configuration is invalid; ``key`` names where (``feeds[3].lang``).

    ``also``: further problems found in the same file; :attr:`errors` lists them all, this
    one first, and the message has a line for each."""

    def __init__(self, key: str, problem: str, also: tuple[ConfigError, ...] = ()):
        self.key = key
        self.problem = problem
        self.line = f"{key}: {problem}" if key else problem  # this problem alone
        self.errors: tuple[ConfigError, ...] = (self, *also)
        super().__init__("\n".join(e.line for e in self.errors))
