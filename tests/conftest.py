"""Test session set-up shared by every test module."""

import sys
import warnings

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Drops SpeechBrain's lazy placeholder modules that cannot be imported
    (optional integrations such as k2) from ``sys.modules``.

    Hypothesis reads ``__file__`` of every loaded module when property tests
    are collected; on such a placeholder that attempts the import and raises
    ImportError, which stops the whole session.
    """
    for name, module in list(sys.modules.items()):
        if type(module).__name__ not in (
            "LazyModule",
            "DeprecatedModuleRedirect",
        ):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                getattr(module, "__file__", None)
        except ImportError:
            del sys.modules[name]
