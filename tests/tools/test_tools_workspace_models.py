"""Every model project that registers an architecture is installed in the workspace's
environment (so `uv run tttv2 models` in a fresh clone lists it and `tttv2 generate
--checkpoint DIR` finds its plugin), as an editable path dependency of the root project."""

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_model_plugin_project_is_a_root_dependency():
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    deps = set(root["project"]["dependencies"])
    sources = root["tool"]["uv"]["sources"]
    plugins = []
    for path in sorted(REPO.glob("models/*/pyproject.toml")):
        project = tomllib.loads(path.read_text())["project"]
        if "tttv2.models" not in project.get("entry-points", {}):
            continue  # e.g. models/example: blocks composed, no architecture to load
        plugins.append(project["name"])
        assert project["name"] in deps, f"{path.parent.name}: not in the root dependencies"
        want = {"path": f"models/{path.parent.name}", "editable": True}
        assert sources.get(project["name"]) == want, (
            f"{path.parent.name}: {sources.get(project['name'])}"
        )
    assert len(plugins) >= 1
