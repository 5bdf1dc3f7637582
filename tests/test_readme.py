"""The README's Python example is executed, so it cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    for code in blocks:
        namespace: dict[str, object] = {}
        exec(compile(code, str(README), "exec"), namespace)  # noqa: S102
        out = namespace["out"]
        assert tuple(out.shape) == (1, 256)  # the decode step's output: one token, hidden 256


def test_readme_names_the_commands_ci_runs() -> None:
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    test_command = "uv run python ci/run.py all"
    assert test_command in text and test_command in ci
    assert "uv run tttv2 generate" in text
