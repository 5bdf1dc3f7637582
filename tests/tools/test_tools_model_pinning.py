"""A model project runs the released wheels it pinned, whatever the workspace does meanwhile.

In a throwaway clone: build the wheelhouse for models/example, sync its own environment with
the model CI job's sync step (`uv sync --locked`, read from ci/matrix.toml), then bump tttv2-core
in the workspace (a new release: a commit that changes its version line). The model keeps
running the old release - after syncing again and even after `uv lock` - until its pin is moved
to the new series and it re-locks; a moved pin without a re-lock fails the sync step.
"""

import json
import re
import tomllib
from pathlib import Path

import pytest
from conftest import commit_all, sh, tool
from matrix import load_jobs
from releases import find_release, last_release

MARKER = "BUMPED_IN_WORKSPACE = True\n"
PROBE = """
import importlib.metadata as md, importlib.util, json, sys
d = md.distribution("tttv2-core")
origin = importlib.util.find_spec("tttv2.core").origin  # located, not imported (no torch import)
print(json.dumps({"version": d.version, "direct_url": d.read_text("direct_url.json"),
                  "file": origin, "prefix": sys.prefix, "source": open(origin).read()}))
"""


def _probe(model: Path) -> dict:
    python = model / ".venv" / "bin" / "python"
    return json.loads(sh([python, "-c", PROBE], model).stdout)


def _locked_version(model: Path, name: str) -> str:
    lock = tomllib.loads((model / "uv.lock").read_text())
    return next(p["version"] for p in lock["package"] if p["name"] == name)


def _ci_sync_step(repo: Path, model: Path) -> list[str]:
    """The argv of the model CI job's `uv sync` step, as ci/matrix.toml declares it."""
    (job,) = [j for j in load_jobs(repo) if j.name == f"model:{model.name}"]
    (step,) = [s for s in job.steps if s.run[:2] == ("uv", "sync")]
    assert repo / step.cwd == model
    return list(step.run)


def _sync(model: Path) -> dict:
    sh(_ci_sync_step(model.parents[1], model), model)
    return _probe(model)


@pytest.mark.slow
def test_model_runs_the_pinned_release_until_it_repins(workspace_clone: Path) -> None:
    repo, model = workspace_clone, workspace_clone / "models" / "example"
    # The release the model pins (not necessarily the newest one).
    released = find_release(repo, "tttv2-core", _locked_version(model, "tttv2-core"))
    released_init = sh(
        ["git", "show", f"{released.commit}:packages/tttv2-core/src/tttv2/core/__init__.py"], repo
    ).stdout

    current = last_release(repo, "tttv2-core")
    assert released.version.split(".")[0] == current.version.split(".")[0], (
        f"models/example pins tttv2-core {released.version} but the workspace is at {current.version}: "
        "re-pin the example to the current major series (its other pins bound core's major, so a new "
        "minor of this major is what a re-pin can reach)"
    )
    tool(repo, "wheelhouse", "--for-model", "models/example")
    info = _sync(model)
    assert info["version"] == released.version
    # Not editable, not a path/URL install: a wheel from the wheelhouse.
    assert info["direct_url"] is None
    assert Path(info["file"]).resolve().is_relative_to((model / ".venv").resolve())
    assert info["source"] == released_init  # the released code, byte for byte
    # (The model's own tests in this environment are the model:example CI job.)

    # The workspace moves on: tttv2-core gets a new minor release with new code.
    init = repo / "packages" / "tttv2-core" / "src" / "tttv2" / "core" / "__init__.py"
    init.write_text(init.read_text() + "\n" + MARKER)
    sh(["uv", "version", "--package", "tttv2-core", "--bump", "minor", "--frozen"], repo)
    commit_all(repo, "tttv2-core: new minor release")
    new = last_release(repo, "tttv2-core")
    assert new.version != released.version
    tool(repo, "wheelhouse", "--package", "tttv2-core")  # the wheelhouse now offers both

    # Unchanged lock: still the old release.
    assert _sync(model)["version"] == released.version
    # Re-resolving with the old pin (==X.Y.*) cannot pick the new minor either.
    sh(["uv", "lock"], model)
    info = _sync(model)
    assert info["version"] == released.version and MARKER not in info["source"]

    # Re-pin to the new series and re-lock: now the model runs the new release.
    pyproject = model / "pyproject.toml"
    series = ".".join(new.version.split(".")[:2])
    text, count = re.subn(
        r'"tttv2-core==[^"]+"', f'"tttv2-core=={series}.*"', pyproject.read_text()
    )
    assert count == 1
    pyproject.write_text(text)
    # Not re-locked yet: the CI sync step refuses the stale lock instead of installing it.
    stale = sh(_ci_sync_step(repo, model), model, check=False)
    assert stale.returncode != 0, stale.stdout + stale.stderr
    assert "needs to be updated" in stale.stderr, stale.stderr
    assert _probe(model)["version"] == released.version  # the environment was left alone
    sh(["uv", "lock"], model)
    info = _sync(model)
    assert info["version"] == new.version and info["direct_url"] is None
    assert MARKER in info["source"]
    assert Path(info["prefix"]).resolve() == (model / ".venv").resolve()
