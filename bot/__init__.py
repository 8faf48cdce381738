"""newsbot: a multilingual news monitor that alerts readers through Telegram."""

__version__ = "0.1.0"
