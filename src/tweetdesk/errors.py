"""Errors a user can act on. The CLI prints them as one line, never as a traceback."""


class TweetdeskError(Exception):
    """Base class: the message is shown to the user as-is."""


class ConfigError(TweetdeskError):
    pass


class ModelNotFoundError(TweetdeskError):
    pass


class InputError(TweetdeskError):
    """Bad input data (a malformed record, an unreadable file)."""
