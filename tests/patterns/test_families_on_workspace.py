"""Every model project installed in the workspace, run on the workspace's packages.

Each project under ``models/`` tests itself against the released wheels it pins; this is
the other direction: an unreleased change to ``packages/`` that breaks a family shows here,
before a release, with the family's own mapping (its plugin's ``load``) and no copy of it.
A tiny random checkpoint per architecture (transformers' defaults, tiny sizes), fp32:
every layer and the logits within 1e-4 of transformers and 16 greedy tokens through the
engine identical to transformers'. (Each project's own job runs its quirk variants,
bf16 and continuous batching; this tier keeps to what a package change most often
breaks, in a few seconds per family.)"""

from __future__ import annotations

import importlib.metadata

import pytest
from families import PLUGIN_GROUP, TINY_BASE, TINY_EXTRA, project

from tttv2.testing.model_kit import (
    check_fp32_parity,
    checkpoint_builder,
    shared_cache_dir,
)

ARCHITECTURES = sorted({ep.name for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP)})


def test_the_workspace_has_the_model_projects() -> None:
    assert {"LlamaForCausalLM", "GPT2LMHeadModel", "Gemma2ForCausalLM", "Phi3ForCausalLM"} <= set(
        ARCHITECTURES
    )


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_family_matches_transformers_on_the_workspace_packages(
    architecture: str, tmp_path_factory
) -> None:
    base = TINY_BASE | TINY_EXTRA.get(architecture, {})
    build = checkpoint_builder(shared_cache_dir(tmp_path_factory, "families"), architecture, base)
    checkpoint = build()
    check_fp32_parity(project(architecture).load, checkpoint, greedy_steps=16)
