"""The README examples run as written."""

from __future__ import annotations

import doctest
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_readme_example(monkeypatch):
    # TTTV2_DEVICE_PROFILE stays as the test session pinned it (tttv2-testing's plugin)
    monkeypatch.delenv("TTTV2_PARAMS", raising=False)
    text = README.read_text()
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, "README.md", str(README), 0)
    assert test.examples, "README has no example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0
