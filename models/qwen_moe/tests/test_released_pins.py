"""This project runs the released tttv2 wheels it pins, never the workspace sources
(one test per pin: tttv2.testing.model_kit.ReleasedPinsTests)."""

from pathlib import Path

from tttv2.testing.model_kit import ReleasedPinsTests


class TestReleasedPins(ReleasedPinsTests):
    project_dir = Path(__file__).parents[1]
    package = "tttv2_model_qwen_moe"
    architectures = ("Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM")


def test_package_imports():
    import tttv2_model_qwen_moe

    assert tttv2_model_qwen_moe.ARCHITECTURES == ("Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM")
