"""`import tttv2.testing` stays light: no transformers, tokenizers or hypothesis."""

import subprocess
import sys


def test_import_is_light():
    code = (
        "import sys, tttv2.testing, tttv2.testing.hf; "
        "heavy = [m for m in ('transformers', 'tokenizers', 'hypothesis', 'griffe') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_submodules_load_on_attribute_access():
    import tttv2.testing as t

    assert t.spec_strategies.attention_specs is not None
    assert t.harness.check_component is not None
    assert t.assert_pcc is t.metrics.assert_pcc
