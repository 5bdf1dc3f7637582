"""The README's ```pycon examples run as doctests (so the documentation cannot rot)."""

import doctest
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_examples_run():
    text = README.read_text()
    blocks = re.findall(r"```pycon\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 3
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    globs: dict = {}
    for i, block in enumerate(blocks):
        test = parser.get_doctest(block, globs, f"README.md[pycon {i}]", str(README), 0)
        runner.run(test, clear_globs=False)
        globs.update(test.globs)  # later blocks reuse names from earlier ones
    result = runner.summarize(verbose=False)
    assert result.attempted > 10
    assert result.failed == 0
