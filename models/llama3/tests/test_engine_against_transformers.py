"""Continuous batching with our Llama: 20 greedy fp32 requests of mixed prompt lengths join
a running batch as others leave, and every request's tokens equal transformers' greedy
continuation of its prompt run alone (tttv2.testing.model_kit.check_continuous_batching)."""

from __future__ import annotations

import torch
from conftest import VARIANTS
from tttv2_llama3 import load

from tttv2.testing.model_kit import check_continuous_batching


def test_requests_joining_and_leaving_a_batch_match_transformers_alone(build):
    overrides, kwargs = VARIANTS["llama3.1-rope-scaling"]
    ck = build(overrides, **kwargs)
    check_continuous_batching(load(ck.path, dtype=torch.float32), ck)
