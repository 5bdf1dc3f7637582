"""This project runs the released tttv2 wheels it pins, never the workspace sources."""

import importlib.metadata as md
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

PROJECT = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
PINS = {
    req.name: req
    for req in map(Requirement, PROJECT["dependencies"])
    if req.name.startswith("tttv2-")
}
ENV = Path(sys.prefix).resolve()


def test_package_imports():
    import tttv2_model_qwen_moe

    assert tttv2_model_qwen_moe.ARCHITECTURES == ("Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM")


@pytest.mark.parametrize("dist_name", sorted(PINS))
def test_pinned_release_is_installed_from_a_wheel(dist_name):
    dist = md.distribution(dist_name)
    assert dist.version in PINS[dist_name].specifier, (dist_name, dist.version)
    # Editable/workspace (and other direct-URL) installs record direct_url.json; wheels from
    # the wheelhouse (a find-links registry) do not.
    assert dist.read_text("direct_url.json") is None, dist.read_text("direct_url.json")
    assert Path(dist.locate_file("")).resolve().is_relative_to(ENV)


def test_tttv2_core_code_comes_from_this_environment():
    import tttv2.core

    assert Path(tttv2.core.__file__).resolve().is_relative_to(ENV), tttv2.core.__file__


@pytest.mark.parametrize(
    ("architecture", "module"),
    [("Qwen2MoeForCausalLM", "qwen2_moe"), ("Qwen3MoeForCausalLM", "qwen3_moe")],
)
def test_architecture_entry_point(architecture, module):
    import importlib

    (ep,) = [ep for ep in md.entry_points(group="tttv2.models") if ep.name == architecture]
    plugin = importlib.import_module(f"tttv2_model_qwen_moe.{module}")
    assert ep.load() is plugin and plugin.ARCHITECTURE == architecture
