"""Speculative decoding: greedy output equals target-only greedy output, sampled output
is reproducible per request and distributed as the target's, rejected drafts leave both
caches, and the acceptance rate is reported."""

import math

import pytest
import torch
from reference_causal_lm import ReferenceCausalLM, greedy_reference
from runtime_helpers import random_prompts

from tttv2.core import ExecutionMode, ModeNotSupportedError
from tttv2.serve.runtime import (
    LLMEngine,
    Request,
    SamplingParams,
    SpeculativeDecoder,
    StopConditions,
    verify_greedy,
    verify_sampled,
)

# the target's second block is a small correction, so its first block alone is a decent draft
TARGET = ReferenceCausalLM(seed=51, num_layers=2, layer_scales=(1.0, 0.3))
DRAFT = TARGET.truncated(1, modes=(ExecutionMode.PREFILL, ExecutionMode.DECODE))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_greedy_speculative_equals_target_greedy(k):
    prompts = random_prompts(6, 64, 2, 24, seed=k)
    news = [5, 17, 1, 24, 9, 30]
    spec = SpeculativeDecoder(TARGET, DRAFT, k, num_blocks=64, block_size=4)
    TARGET.passes.clear()
    outs = [
        spec.add_request(p, stop=StopConditions(max_new_tokens=m))
        for p, m in zip(prompts, news, strict=True)
    ]
    done = {o.request_id: o for o in spec.run_until_done()}
    for rid, p, m in zip(outs, prompts, news, strict=True):
        assert done[rid].token_ids == greedy_reference(TARGET, p, m), rid
        assert done[rid].finish_reason == "length"
    stats = spec.spec_stats
    assert 0 < stats.acceptance_rate < 1  # both accepting and rejecting paths ran
    assert stats.emitted == sum(news)
    # the target prefilled prompts, then verified in SPECULATIVE passes of k + 1 tokens per
    # sequence (fewer only where max_new_tokens leaves less room)
    assert {mode for mode, _, _ in TARGET.passes} == {
        ExecutionMode.PREFILL,
        ExecutionMode.SPECULATIVE,
    }
    verify = [
        q for mode, lens, _ in TARGET.passes if mode is ExecutionMode.SPECULATIVE for q in lens
    ]
    assert max(verify) == k + 1 and verify.count(k + 1) > len(verify) // 2
    assert spec.target.blocks.num_free_blocks == 64 and spec.draft.blocks.num_free_blocks == 64


def test_engine_and_speculative_agree_with_eos_and_stop_strings():
    pieces = [chr(97 + i % 26) * (1 + i % 2) for i in range(64)]

    def detok(ids):
        return "".join(pieces[i] for i in ids)

    prompts = random_prompts(5, 64, 3, 10, seed=9)
    stops = []
    for p in prompts:
        toks = greedy_reference(TARGET, p, 20)
        stops.append(
            StopConditions(
                max_new_tokens=20, eos_token_ids=(toks[12],), stop_strings=(detok(toks[6:8])[1:],)
            )
        )
    engine = LLMEngine(TARGET, num_blocks=64, block_size=4, detokenize=detok)
    spec = SpeculativeDecoder(TARGET, DRAFT, 4, num_blocks=64, block_size=4, detokenize=detok)
    want = [engine.generate([Request(p, stop=s)])[0] for p, s in zip(prompts, stops, strict=True)]
    got = spec.generate([Request(p, stop=s) for p, s in zip(prompts, stops, strict=True)])
    for w, g in zip(want, got, strict=True):
        assert (g.token_ids, g.text, g.finish_reason, g.stop_reason) == (
            w.token_ids,
            w.text,
            w.finish_reason,
            w.stop_reason,
        )
    assert any(w.finish_reason == "stop" for w in want)


def test_speculative_runs_to_the_context_limit():
    spec = SpeculativeDecoder(TARGET, DRAFT, 4, num_blocks=8, block_size=4)  # 32-token pool
    prompt = random_prompts(1, 64, 25, 25, seed=3)[0]
    out = spec.generate([prompt])[0]
    assert out.finish_reason == "context" and len(prompt) + len(out.token_ids) == 32
    assert out.token_ids == greedy_reference(TARGET, prompt, 7)


def test_a_perfect_draft_is_always_accepted():
    spec = SpeculativeDecoder(TARGET, TARGET, 4, num_blocks=64, block_size=4)
    out = spec.generate([[1, 2, 3]], SamplingParams(), StopConditions(max_new_tokens=21))[0]
    assert out.token_ids == greedy_reference(TARGET, [1, 2, 3], 21)
    assert spec.spec_stats.acceptance_rate == 1.0
    assert spec.spec_stats.tokens_per_round == 21 / 5  # 5 rounds of 4 drafts + 1 (last: 0 + 1)


def test_seeded_speculative_sampling_ignores_the_rest_of_the_batch():
    params = SamplingParams(temperature=1.0, top_k=20, seed=5)
    mine = Request([4, 5, 6, 7], params, StopConditions(max_new_tokens=20), request_id="mine")
    alone = SpeculativeDecoder(TARGET, DRAFT, 3, num_blocks=64, block_size=4).generate([mine])[0]
    others = [
        Request(p, SamplingParams(temperature=0.9, seed=i), StopConditions(max_new_tokens=15))
        for i, p in enumerate(random_prompts(5, 64, 2, 15, seed=4))
    ]
    crowd = SpeculativeDecoder(TARGET, DRAFT, 3, num_blocks=96, block_size=4).generate(
        [*others[:2], mine, *others[2:]]
    )
    assert crowd[2].token_ids == alone.token_ids


def test_verify_greedy():
    assert verify_greedy([5, 6, 7, 8], [5, 6, 9]) == (2, 7)
    assert verify_greedy([5, 6, 7, 8], [5, 6, 7]) == (3, 8)
    assert verify_greedy([1], []) == (0, 1)


def test_verify_sampled_emits_the_target_distribution():
    p = torch.tensor([[0.5, 0.3, 0.2, 0.0], [0.1, 0.1, 0.4, 0.4], [0.25, 0.25, 0.25, 0.25]])
    q = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]])
    g = torch.Generator().manual_seed(0)
    n = 4000
    first, second = torch.zeros(4), torch.zeros(4)
    accepted_first = 0
    for _ in range(n):
        d = [
            int(torch.multinomial(q[0], 1, generator=g)),
            int(torch.multinomial(q[1], 1, generator=g)),
        ]
        accepted, nxt = verify_sampled(p, q, d, g)
        tokens = [*d[:accepted], nxt]
        first[tokens[0]] += 1
        accepted_first += accepted >= 1
        if len(tokens) > 1 and tokens[0] == 0:
            second[tokens[1]] += 1
    sigma = math.sqrt(0.25 / n)
    assert (first / n - p[0]).abs().max() < 4 * sigma  # token 1 ~ p_1 whatever q_1 is
    assert first[3] == 0  # the target never emits what it gives probability 0
    # P(accept d_1) = sum_x min(p_1(x), q_1(x)) = 0.1 + 0.2 + 0.2 + 0 = 0.5
    assert abs(accepted_first / n - 0.5) < 4 * sigma
    # token 2 after an accepted token 0 follows p_2 (only drafts reach this: sample is smaller)
    m = second.sum()
    assert m > 50 and (second / m - p[1]).abs().max() < 4 * math.sqrt(0.25 / m)


def test_target_without_speculative_mode_is_refused():
    plain = ReferenceCausalLM(seed=51, modes=(ExecutionMode.PREFILL, ExecutionMode.DECODE))
    with pytest.raises(ModeNotSupportedError, match="speculative"):
        SpeculativeDecoder(plain, DRAFT, 2, num_blocks=16, block_size=4)
    with pytest.raises(ValueError, match="k=0"):
        SpeculativeDecoder(TARGET, DRAFT, 0, num_blocks=16, block_size=4)
    other_vocab = ReferenceCausalLM(seed=1, vocab_size=65)
    with pytest.raises(ValueError, match="vocabulary"):
        SpeculativeDecoder(TARGET, other_vocab, 2, num_blocks=16, block_size=4)
