"""tools/new_model.py: a scaffolded model is a CI job at once, and that job passes."""

import tomllib
from pathlib import Path

import pytest
from conftest import sh, tool
from releases import last_release


@pytest.mark.slow
def test_scaffold_is_picked_up_by_ci_and_its_job_passes(workspace_clone: Path) -> None:
    repo = workspace_clone
    tool(repo, "new_model", "tiny-llama", "--architecture", "LlamaForCausalLM")
    model = repo / "models" / "tiny-llama"
    for rel in (
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "src/tttv2_model_tiny_llama/__init__.py",
        "src/tttv2_model_tiny_llama/config.py",
        "src/tttv2_model_tiny_llama/weights.py",
        "src/tttv2_model_tiny_llama/plugin.py",
        "tests/test_released_pins.py",
        "tests/test_against_transformers.py",
        "tests/test_generation.py",
    ):
        assert (model / rel).is_file(), rel

    project = tomllib.loads((model / "pyproject.toml").read_text())["project"]
    for lib in ("tttv2-core", "tttv2-hw", "tttv2-blocks", "tttv2-testing"):
        series = ".".join(last_release(repo, lib).version.split(".")[:2])
        assert f"{lib}=={series}.*" in project["dependencies"]
    assert project["entry-points"]["tttv2.models"] == {
        "LlamaForCausalLM": "tttv2_model_tiny_llama.plugin"
    }
    # Every LlamaConfig field is mapped or known to be ignored: nothing left to do.
    assert (
        "TODO: tuple[str, ...] = ()" in (model / "src/tttv2_model_tiny_llama/config.py").read_text()
    )
    root = tomllib.loads((repo / "pyproject.toml").read_text())
    assert "tttv2-model-tiny-llama" in root["project"]["dependencies"]
    assert root["tool"]["uv"]["sources"]["tttv2-model-tiny-llama"] == {
        "path": "models/tiny-llama",
        "editable": True,
    }

    # The matrix found it and the committed-workflow rule holds (new_model regenerated it).
    assert "model:tiny-llama" in tool(repo, "ci", "list").stdout.split()
    tool(repo, "ci", "gen-workflow", "--check")
    assert '"model:tiny-llama"' in (repo / ".github/workflows/ci.yml").read_text()

    # Run its CI job exactly as CI does (uv run ... in the clone, the model's own venv).
    proc = sh(["uv", "run", "python", "ci/run.py", "model:tiny-llama"], repo, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.stdout.rstrip().splitlines()[-1] == "1 passed, 0 failed"
    assert "test_architecture_entry_points" not in proc.stdout  # quiet on success ...
    assert (model / ".venv").is_dir()


def test_bad_names_are_rejected(workspace_clone: Path) -> None:
    proc = tool(workspace_clone, "new_model", "Bad Name", check=False)
    assert proc.returncode == 2 and "invalid model name" in proc.stderr
    proc = tool(workspace_clone, "new_model", "example", check=False)
    assert proc.returncode == 2 and "models/example already exists" in proc.stderr
    proc = tool(
        workspace_clone, "new_model", "ok", "--architecture", "not-an-identifier", check=False
    )
    assert proc.returncode == 2 and "invalid architecture" in proc.stderr
    assert not (workspace_clone / "models" / "ok").exists()
