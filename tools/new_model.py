"""Scaffold a model project in models/NAME, pinned to the current releases, and lock it.

    uv run python tools/new_model.py llama --architecture LlamaForCausalLM

Creates models/NAME/ from tools/model_template/: pyproject.toml pinning tttv2-core/hw/blocks/
testing to their last released minor series (`==X.Y.*`), src/tttv2_model_NAME/__init__.py
(and, with --architecture, an entry point in group `tttv2.models` keyed by that name), and
tests that pass from the start: the package imports, and every tttv2 package in its
environment is the pinned release installed from a wheel (not the workspace). Then builds the
pinned wheels into wheelhouse/, runs `uv lock` in models/NAME, and regenerates the CI
workflow: the matrix finds models/*/pyproject.toml, so the new `model:NAME` job exists at once.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from string import Template

from releases import last_release
from workspace import REPO_ROOT, ToolError, main_guard, run

from wheelhouse import DEFAULT_OUT, ensure

LIBRARIES = ("tttv2-core", "tttv2-hw", "tttv2-blocks", "tttv2-testing")
TEMPLATE = Path(__file__).resolve().parent / "model_template"
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:[_-][a-z0-9]+)*$")
ARCH_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ARCH_DOC = """

This package is the model plugin for $architecture (entry point in group `tttv2.models`, see
pyproject.toml). tttv2 asks a plugin for `load(checkpoint_dir, *, dtype, device,
progress=None) -> LoadedModel` (the protocol in tttv2.core.model_plugins); until this module
defines `load`, tttv2 reports the plugin as having no load callable."""
ARCH_TEST = """

def test_architecture_entry_point():
    (ep,) = [ep for ep in md.entry_points(group="tttv2.models") if ep.name == $architecture]
    import $module

    assert ep.load() is $module
"""


def render(dest: Path, values: dict[str, str]) -> None:
    for tmpl in sorted(TEMPLATE.rglob("*.tmpl")):
        rel = tmpl.relative_to(TEMPLATE).with_suffix("")
        if rel.parts[0] == "src":
            rel = Path("src", values["module"], *rel.parts[1:])
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(Template(tmpl.read_text()).substitute(values))


def scaffold(repo_root: Path, name: str, architecture: str | None) -> Path:
    if not NAME_RE.match(name):
        raise ToolError(
            f"invalid model name {name!r}: use lowercase letters, digits, '-' or '_'", code=2
        )
    if architecture is not None and not ARCH_RE.match(architecture):
        raise ToolError(
            f"invalid architecture {architecture!r}: expected an identifier like LlamaForCausalLM",
            code=2,
        )
    dest = repo_root / "models" / name
    if dest.exists():
        raise ToolError(f"{dest.relative_to(repo_root)} already exists", code=2)
    releases = []
    for lib in LIBRARIES:
        release = last_release(repo_root, lib)
        if release is None:
            raise ToolError(f"{lib} has never been released; release it first (tools/release.py)")
        releases.append(release)
    ensure(repo_root, releases, DEFAULT_OUT)
    module = "tttv2_model_" + name.replace("-", "_")
    arch = f'"{architecture}"' if architecture else "None"
    series = {r.package: ".".join(r.version.split(".")[:2]) + ".*" for r in releases}
    values = {
        "name": name,
        "module": module,
        "pins": "".join(f'    "{lib}=={s}",\n' for lib, s in series.items()),
        "pin_summary": ", ".join(f"{lib}=={s}" for lib, s in series.items()),
        "architecture": arch,
        "architecture_check": f"== {arch}" if architecture else "is None",
        "architecture_doc": ARCH_DOC.replace("$architecture", architecture) if architecture else "",
        "entry_points": (
            f'\n[project.entry-points."tttv2.models"]\n{architecture} = "{module}"\n'
            if architecture
            else ""
        ),
        "architecture_test": Template(ARCH_TEST).substitute(module=module, architecture=arch)
        if architecture
        else "",
    }
    render(dest, values)
    try:
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        print(f"$ (cd {dest.relative_to(repo_root)} && uv lock)", flush=True)
        if subprocess.run(["uv", "lock"], cwd=dest, env=env, check=False).returncode != 0:
            raise ToolError(f"uv lock failed in {dest.relative_to(repo_root)}")
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    run([sys.executable, str(repo_root / "ci" / "run.py"), "gen-workflow"], cwd=repo_root)
    return dest


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", help="model project name, e.g. llama (creates models/NAME)")
    parser.add_argument(
        "--architecture",
        metavar="HFArchName",
        help="Hugging Face architecture to register in entry-point group tttv2.models",
    )
    args = parser.parse_args()
    dest = scaffold(REPO_ROOT, args.name, args.architecture)
    rel = dest.relative_to(REPO_ROOT)
    print(
        f"created {rel}; CI job model:{args.name}. Next: uv run python ci/run.py model:{args.name}, "
        f"then git add {rel} .github/workflows/ci.yml"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
