"""The examples in the mail modules' docstrings are tests too."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from mailbot.mail import backoff, compose


@pytest.mark.parametrize("module", [backoff, compose], ids=lambda m: m.__name__)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
