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
from wheelhouse import DEFAULT_OUT, ensure
from workspace import REPO_ROOT, ToolError, main_guard, run

LIBRARIES = ("tttv2-core", "tttv2-hw", "tttv2-blocks", "tttv2-testing")
#: Released packages the pinned libraries depend on (not pinned by the model, but its lock
#: resolves them from the wheelhouse too): tttv2-testing's model kit drives tttv2-serve's engine.
DEPENDENCIES = ("tttv2-serve",)
TEMPLATE = Path(__file__).resolve().parent / "model_template"
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:[_-][a-z0-9]+)*$")
ARCH_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ARCH_DOC = """

This package is the model plugin for $architecture (entry point in group `tttv2.models` ->
`plugin.py`, whose `load` is tttv2.blocks.weights.load_hf_checkpoint with `config.py`'s
mapping and `weights.py`'s tensor names)."""
KEYS_DOC = """
## Config keys read

The `config.json` keys that change what this project builds (keep this list exact: a key
transformers ignores for this architecture must not change our output, a key it honours
must). Written by the scaffold from the {owner} fields the shared readers know; add the
ones you map from `TODO` in `config.py`:

{keys}
"""
#: Files written only for an architecture (the kit: mapping, names, plugin, parity tests).
ARCH_ONLY = {
    "src/config.py.tmpl",
    "src/weights.py.tmpl",
    "src/plugin.py.tmpl",
    "tests/conftest.py.tmpl",
    "tests/test_against_transformers.py.tmpl",
    "tests/test_generation.py.tmpl",
}


def render(dest: Path, values: dict[str, str], with_kit: bool) -> None:
    for tmpl in sorted(TEMPLATE.rglob("*.tmpl")):
        if not with_kit and tmpl.relative_to(TEMPLATE).as_posix() in ARCH_ONLY:
            continue
        rel = tmpl.relative_to(TEMPLATE).with_suffix("")
        if rel.parts[0] == "src":
            rel = Path("src", values["module"], *rel.parts[1:])
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(Template(tmpl.read_text()).substitute(values))


def default_theta(config_class: type) -> float:
    """The config class's default RoPE base, or 10000.0 where it declares none or declares
    several (Gemma 3's ``{"global": ..., "local": ...}``: the model's config.py reads both)."""
    theta = getattr(config_class, "default_theta", 10000.0)
    return float(theta) if isinstance(theta, int | float) else 10000.0


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
    needed = list(releases)
    for lib in DEPENDENCIES:
        release = last_release(repo_root, lib)
        if release is None:
            raise ToolError(f"{lib} has never been released; release it first (tools/release.py)")
        needed.append(release)
    ensure(repo_root, needed, DEFAULT_OUT)
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
            f'\n[project.entry-points."tttv2.models"]\n{architecture} = "{module}.plugin"\n'
            if architecture
            else ""
        ),
        "architectures": f"({arch},)" if architecture else "()",
    }
    if architecture:
        values |= kit_values(architecture, series["tttv2-testing"])
        values["exports"] = (
            f"\nfrom {module}.plugin import load  # noqa: E402\n\n"
            '__all__ = ["ARCHITECTURE", "load"]\n'
        )
    else:
        values |= {"exports": "", "dev_extra": "", "keys_read": ""}
    render(dest, values, with_kit=architecture is not None)
    try:
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        print(f"$ (cd {dest.relative_to(repo_root)} && uv lock)", flush=True)
        if subprocess.run(["uv", "lock"], cwd=dest, env=env, check=False).returncode != 0:
            raise ToolError(f"uv lock failed in {dest.relative_to(repo_root)}")
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    if architecture:
        add_to_workspace(repo_root, name)
    run([sys.executable, str(repo_root / "ci" / "run.py"), "gen-workflow"], cwd=repo_root)
    return dest


def kit_values(architecture: str, testing_series: str) -> dict[str, str]:
    """Template values read from transformers: config fields and parameter names."""
    from model_scaffold import (
        classify_fields,
        config_fields,
        meta_parameter_names,
        rename_rules_source,
        transformers_class,
    )

    try:
        cls = transformers_class(architecture)
    except ValueError as exc:
        raise ToolError(str(exc), code=2) from None
    config_class = cls.config_class
    fields = config_fields(config_class)
    mapped, ignored, todo = classify_fields(fields)
    defaults = config_class()

    def default(key: str) -> str:
        value = getattr(defaults, key, None)
        return f", {value!r}" if value is not None else ""

    def read(key: str, kind: str, fallback: str) -> str:
        return f'cfg.{kind}("{key}"{default(key)})' if key in fields else fallback

    def as_tuple(keys: list[str]) -> str:
        return ", ".join(f'"{k}"' for k in keys) + ("," if len(keys) == 1 else "")

    rules = rename_rules_source(meta_parameter_names(architecture))
    return {
        "owner": config_class.__name__,
        "architecture_name": architecture,
        "todo": as_tuple(todo),
        "ignored": as_tuple(ignored),
        "head_dim": "cfg.head_dim()" if "head_dim" in fields else "hidden // heads",
        "max_pos_default": default("max_position_embeddings"),
        "eps_default": default("rms_norm_eps"),
        "act_default": default("hidden_act"),
        "partial": str("partial_rotary_factor" in fields),
        "theta": repr(default_theta(config_class)),
        "kv_heads": 'cfg.int("num_key_value_heads", heads)'
        if "num_key_value_heads" in fields
        else "heads",
        "attention_bias": read("attention_bias", "bool", "False"),
        "mlp_bias": read("mlp_bias", "bool", "False"),
        "tied": read("tie_word_embeddings", "bool", "False"),
        "rules": "\n".join(" " * 12 + line for line in rules),
        "dev_extra": f', "tttv2-testing[hf]=={testing_series}"',
        "keys_read": KEYS_DOC.format(
            owner=config_class.__name__,
            keys=", ".join(f"`{k}`" for k in ["architectures", *mapped]),
        ),
    }


def add_to_workspace(repo_root: Path, name: str) -> None:
    """The workspace's environment installs the project (editable) so `uv run tttv2 models`
    lists it; the project's own CI job still runs the released wheels it pins."""
    path = repo_root / "pyproject.toml"
    text = path.read_text()
    dist = f"tttv2-model-{name}"
    marker = "    # Model projects installed for the `tttv2` command"
    if f'"{dist}"' in text or marker not in text:
        return
    deps_end = text.index("]", text.index(marker))
    text = text[:deps_end] + f'    "{dist}",\n' + text[deps_end:]
    sources = "[tool.uv.sources]\n"
    at = text.index(sources) + len(sources)
    block_end = text.find("\n\n", at)
    text = (
        text[:block_end]
        + f'\n{dist} = {{ path = "models/{name}", editable = true }}'
        + text[block_end:]
    )
    path.write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    if subprocess.run(["uv", "lock"], cwd=repo_root, env=env, check=False).returncode != 0:
        raise ToolError("uv lock failed at the repository root after adding the model")


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
