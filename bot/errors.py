"""The project's named exceptions. Messages start with the stage that failed."""


class NewsBotError(Exception):
    """Base class for errors this project raises on purpose."""


class ConfigError(NewsBotError, ValueError):
    """The configuration is invalid; ``key`` names where (``feeds[3].lang``)."""

    def __init__(self, key: str, problem: str):
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}" if key else problem)
