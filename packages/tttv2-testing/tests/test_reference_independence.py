"""The contract of tttv2.testing.reference: references never import tttv2.blocks (or
anything else of this package but other references), so a bug shared by a block and its
reference cannot hide. Checked on the source, for every reference file present."""

import ast
from pathlib import Path

import pytest

import tttv2.testing.reference as reference

FILES = sorted(Path(reference.__file__).parent.glob("*.py"))
ALLOWED_TTTV2 = ("tttv2.core", "tttv2.testing.reference")


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                names.append("tttv2.testing.reference" + ("." + node.module if node.module else ""))
            else:
                names.append(node.module or "")
    return names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_reference_imports_nothing_from_the_blocks(path):
    bad = [
        name
        for name in imported_modules(path)
        if name.split(".")[0] == "tttv2" and not name.startswith(ALLOWED_TTTV2)
    ]
    assert not bad, (
        f"{path.name} imports {bad}; references may only use tttv2.core and other references"
    )


def test_the_check_sees_a_forbidden_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from tttv2.blocks.building_blocks import attention\nimport torch\n")
    assert "tttv2.blocks.building_blocks" in imported_modules(sample)
