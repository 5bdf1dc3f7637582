"""A fault in a step ends only the requests it concerns: NaN logits for one row, a
temperature so small the scaled logits overflow, a model that raises on one sequence's
pass, a stop check that raises, a KeyboardInterrupt in the middle of a step. Every other
request produces the tokens it produces undisturbed, the KV blocks all come back, and a
fresh request afterwards is served correctly."""

import pytest
import torch
from reference_causal_lm import ReferenceCausalLM, greedy_reference
from runtime_helpers import random_prompts

from tttv2.serve.runtime import (
    InvalidRequestError,
    LLMEngine,
    Request,
    RequestFailedError,
    SamplingParams,
    StopConditions,
)

MODEL = ReferenceCausalLM(seed=33, max_seq_len=64)
MARKER = 63  # the culprit's prompt starts with it; no other prompt does
NUM_BLOCKS = 40


class FaultyModel(torch.nn.Module):
    """The reference model, with a fault for the sequence whose prompt starts with
    ``MARKER`` from its ``from_pass``-th pass on: ``"raise"`` (the pass raises),
    ``"nan"`` (its logits rows are NaN), ``"inf"`` (+inf in its rows), ``"huge"`` (a finite
    3e38 in its rows, which any temperature below 1 scales past float32). ``interrupt_at``
    raises KeyboardInterrupt on that call (counting every call), once."""

    def __init__(
        self, fault: str | None = None, from_pass: int = 1, interrupt_at: int | None = None
    ) -> None:
        super().__init__()
        self.inner = MODEL
        self.fault, self.from_pass, self.interrupt_at = fault, from_pass, interrupt_at
        self.calls = 0
        self.culprits: dict[int, int] = {}  # seq_id -> passes it has been in
        self.max_seq_len, self.vocab_size = MODEL.max_seq_len, MODEL.vocab_size

    def supported_modes(self):
        return self.inner.supported_modes()

    def set_mode(self, mode):
        self.inner.set_mode(mode)

    @property
    def current_mode(self):
        return self.inner.current_mode

    def new_cache(self, num_blocks, block_size, dtype=None):
        return self.inner.new_cache(num_blocks, block_size, dtype)

    def forward(self, input_ids, meta, cache):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        starts = meta.query_start.tolist()
        hit = []
        for i, (s, c) in enumerate(zip(meta.seq_ids, meta.context_lens, strict=True)):
            if c == 0 and int(input_ids[starts[i]]) == MARKER:
                self.culprits.setdefault(s, 0)
            if s in self.culprits:
                self.culprits[s] += 1
                if self.culprits[s] >= self.from_pass:
                    hit.append(i)
        if hit and self.fault == "raise":
            raise RuntimeError("injected device fault")
        logits = self.inner(input_ids, meta, cache)
        if hit and self.fault in ("nan", "inf", "huge"):
            rows = [
                j
                for j, t in enumerate(meta.logits_indices.tolist())
                if any(starts[i] <= t < starts[i + 1] for i in hit)
            ]
            logits = logits.clone()
            logits[rows, 5] = {"nan": float("nan"), "inf": float("inf"), "huge": 3e38}[self.fault]
        return logits


def others_and_culprit(n: int = 5, seed: int = 8) -> tuple[list[list[int]], list[int]]:
    prompts = [[t % MARKER for t in p] for p in random_prompts(n, 64, 3, 12, seed=seed)]
    return prompts, [MARKER, 7, 9, 11, 2]


def engine_for(model, **kw) -> LLMEngine:
    kw.setdefault("max_num_batched_tokens", 16)
    return LLMEngine(model, num_blocks=NUM_BLOCKS, block_size=4, **kw)


def assert_fresh_request_is_served(engine: LLMEngine) -> None:
    out = engine.generate([[4, 8, 15, 16]], SamplingParams(), StopConditions(max_new_tokens=5))[0]
    assert out.finish_reason == "length" and out.token_ids == greedy_reference(
        MODEL, [4, 8, 15, 16], 5
    )
    assert engine.num_free_blocks == NUM_BLOCKS


@pytest.mark.parametrize(
    ("fault", "message"), [("raise", "injected device fault"), ("nan", "NaN"), ("inf", r"\+inf")]
)
def test_a_fault_on_one_sequence_ends_only_that_request(fault, message):
    others, culprit = others_and_culprit()
    model = FaultyModel(fault, from_pass=3)
    engine = engine_for(model)
    stop = StopConditions(max_new_tokens=10)
    outs = engine.generate([*others[:2], culprit, *others[2:]], SamplingParams(), stop)
    failed = outs.pop(2)
    assert failed.finish_reason == "error" and failed.error is not None
    assert failed.error and __import__("re").search(message, failed.error), failed.error
    assert 0 < len(failed.token_ids) < 10  # it ran, then failed on its third pass
    for p, o in zip(others, outs, strict=True):
        assert o.finish_reason == "length" and o.error is None
        assert o.token_ids == greedy_reference(MODEL, p, 10)
    assert engine.stats.failed_requests == 1
    assert engine.num_free_blocks == NUM_BLOCKS
    assert_fresh_request_is_served(engine)


def test_a_temperature_that_overflows_the_scaled_logits_ends_only_that_request():
    # SamplingParams refuses temperatures below 0.01 (1e-300 is 0 in float32), but even the
    # smallest valid one overflows huge finite logits: that row alone fails at sampling.
    others, culprit = others_and_culprit(seed=9)
    requests = [
        Request(p, SamplingParams(temperature=0.7, seed=i), StopConditions(max_new_tokens=8))
        for i, p in enumerate(others)
    ]
    hot = Request(
        culprit, SamplingParams(temperature=0.01, seed=99), StopConditions(max_new_tokens=8)
    )
    undisturbed = engine_for(MODEL).generate(requests)
    engine = engine_for(FaultyModel("huge"))
    outs = engine.generate([*requests[:3], hot, *requests[3:]])
    failed = outs.pop(3)
    assert failed.finish_reason == "error" and "sampling failed" in failed.error
    assert failed.token_ids == []
    assert [o.token_ids for o in outs] == [o.token_ids for o in undisturbed]  # seeded: same draws
    assert engine.num_free_blocks == NUM_BLOCKS
    assert_fresh_request_is_served(engine)


def test_nan_logits_for_one_seeded_request_leave_the_others_random_streams_alone():
    others, culprit = others_and_culprit(seed=10)
    params = [SamplingParams(temperature=1.0, top_k=20, seed=100 + i) for i in range(len(others))]
    stop = StopConditions(max_new_tokens=9)
    undisturbed = engine_for(MODEL).generate(
        [Request(p, s, stop) for p, s in zip(others, params, strict=True)]
    )
    engine = engine_for(FaultyModel("nan", from_pass=2))
    requests = [Request(p, s, stop) for p, s in zip(others, params, strict=True)]
    outs = engine.generate(
        [
            requests[0],
            Request(culprit, SamplingParams(temperature=1.0, seed=5), stop),
            *requests[1:],
        ]
    )
    assert outs.pop(1).finish_reason == "error"
    assert [o.token_ids for o in outs] == [o.token_ids for o in undisturbed]


def test_a_keyboard_interrupt_mid_step_leaves_the_engine_as_before_the_step():
    others, _ = others_and_culprit(seed=11)
    model = FaultyModel()
    engine = engine_for(model, max_num_batched_tokens=8)
    ids = engine.add_requests(others, SamplingParams(), StopConditions(max_new_tokens=12))
    for _ in range(4):
        engine.step()

    def state():
        sched = engine.scheduler
        return (
            engine.runner.blocks.snapshot(),
            [s.request_id for s in sched.waiting],
            [s.request_id for s in sched.running],
            {rid: (engine.output(rid).token_ids, engine.output(rid).finish_reason) for rid in ids},
            engine.stats.steps,
        )

    for _ in range(3):  # interrupted three times in a row, at the same step
        before = state()
        model.interrupt_at = model.calls + 1
        with pytest.raises(KeyboardInterrupt):
            engine.step()
        assert state() == before
    outs = engine.run_until_done()
    for p, o in zip(others, outs, strict=True):
        assert o.token_ids == greedy_reference(MODEL, p, 12)
    assert engine.num_free_blocks == NUM_BLOCKS


def test_a_keyboard_interrupt_while_tokens_are_appended_is_undone_too():
    """The interrupt comes from one request's detokenizer, after other requests of the
    step already took their token: the step is undone for all of them."""
    calls = {"n": 0, "interrupt_at": None}

    def detokenize(ids):
        calls["n"] += 1
        if calls["n"] == calls["interrupt_at"]:
            raise KeyboardInterrupt
        return " ".join(map(str, ids))

    others, _ = others_and_culprit(seed=12)
    engine = engine_for(MODEL, detokenize=detokenize)
    ids = engine.add_requests(
        others, SamplingParams(temperature=0.9, seed=3), StopConditions(max_new_tokens=7)
    )
    for _ in range(5):
        engine.step()
    before = {rid: (engine.output(rid).token_ids, engine.output(rid).text) for rid in ids}
    calls["interrupt_at"] = calls["n"] + 5  # a few appends into the step
    with pytest.raises(KeyboardInterrupt):
        engine.step()
    assert {rid: (engine.output(rid).token_ids, engine.output(rid).text) for rid in ids} == before
    outs = engine.run_until_done()
    undisturbed = engine_for(MODEL, detokenize=lambda ids: " ".join(map(str, ids))).generate(
        others, SamplingParams(temperature=0.9, seed=3), StopConditions(max_new_tokens=7)
    )
    assert [(o.token_ids, o.text) for o in outs] == [(o.token_ids, o.text) for o in undisturbed]


def test_a_raising_stop_check_ends_only_its_request():
    def detokenize(ids):
        if 13 in ids:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "injected")
        return "".join(chr(97 + t % 26) for t in ids)

    prompts = [[1, 2], [13, 3], [4, 5, 6]]
    engine = engine_for(MODEL, detokenize=detokenize)
    outs = engine.generate(prompts, SamplingParams(), StopConditions(max_new_tokens=6))
    assert outs[1].finish_reason == "error" and "UnicodeDecodeError" in outs[1].error
    for i in (0, 2):
        assert outs[i].token_ids == greedy_reference(MODEL, prompts[i], 6)
    assert engine.num_free_blocks == NUM_BLOCKS


def test_a_failure_under_preemption_and_swap_leaves_every_other_request_unchanged():
    """Every third batched pass fails (a fault no one request owns: each request's pass
    alone succeeds), in a pool small enough to preempt (and swap): failed steps that had
    preempted and handed the victim's blocks to others are rolled back, and every request
    still gets its undisturbed tokens."""
    prompts = [[t % MARKER for t in p] for p in random_prompts(8, 64, 6, 14, seed=13)]

    class EveryThird(FaultyModel):
        batched = 0

        def forward(self, input_ids, meta, cache):
            logits = super().forward(input_ids, meta, cache)  # keys and values are written
            if len(meta.seq_ids) > 1:
                self.batched += 1
                if self.batched % 3 == 2:
                    raise RuntimeError("transient")
            return logits

    for swap_blocks in (16, 0):
        engine = LLMEngine(
            EveryThird(),
            num_blocks=12,
            block_size=4,
            max_num_batched_tokens=32,
            swap_blocks=swap_blocks,
        )
        outs = engine.generate(prompts, SamplingParams(), StopConditions(max_new_tokens=16))
        assert engine.stats.preemptions > 0
        for p, o in zip(prompts, outs, strict=True):
            assert o.error is None and o.token_ids == greedy_reference(MODEL, p, 16)
        assert engine.num_free_blocks == 12


def test_a_stream_of_a_failed_request_raises_with_its_output():
    engine = engine_for(FaultyModel("nan", from_pass=2))
    with pytest.raises(
        RequestFailedError, match="failed: sampling failed: the logits contain NaN"
    ) as info:
        for _ in engine.stream([MARKER, 1, 2], SamplingParams(), StopConditions(max_new_tokens=5)):
            pass
    assert info.value.output.finish_reason == "error"
    assert engine.num_free_blocks == NUM_BLOCKS


def test_submitting_several_requests_is_atomic():
    engine = engine_for(MODEL)
    good = [[1, 2, 3], [4, 5]]
    with pytest.raises(InvalidRequestError, match="outside the vocabulary"):
        engine.generate([*good, [1, 64]], SamplingParams(), StopConditions(max_new_tokens=3))
    assert not engine.has_unfinished()
    with pytest.raises(InvalidRequestError, match="appears twice"):
        engine.add_requests([Request([1], request_id="a"), Request([2], request_id="a")])
    with pytest.raises(InvalidRequestError, match="already in use"):
        engine.add_request(Request([1], request_id="b"))
        engine.add_requests([Request([2], request_id="c"), Request([3], request_id="b")])
    engine.abort("b")
    engine.pop_output("b")
    assert not engine.has_unfinished()
    with pytest.raises(InvalidRequestError, match="no request with id 'c'"):
        engine.output("c")
    assert engine.num_free_blocks == NUM_BLOCKS
    assert_fresh_request_is_served(engine)


@pytest.mark.parametrize("swap_blocks", [16, 0])
def test_an_interrupt_after_a_preempting_pass_wrote_its_kv_keeps_the_victim_intact(swap_blocks):
    """The interrupted step had preempted a request and its pass had already written other
    requests' keys and values into the victim's freed blocks. After the rollback the
    victim's cache must be whole again (swapped: copied back from the host pool) or be
    recomputed (KV discarded): here another request is aborted before the next step, so
    the scheduler no longer preempts the victim and it runs on from its blocks."""
    prompts = [[t % MARKER for t in p] for p in random_prompts(8, 64, 6, 14, seed=13)]
    holder = {}

    class InterruptAfterPreemptingPass(FaultyModel):
        fired = False

        def forward(self, input_ids, meta, cache):
            logits = super().forward(input_ids, meta, cache)
            if not self.fired and holder["engine"].scheduler.victims:
                self.fired = True
                raise KeyboardInterrupt
            return logits

    model = InterruptAfterPreemptingPass()
    engine = LLMEngine(
        model, num_blocks=12, block_size=4, max_num_batched_tokens=32, swap_blocks=swap_blocks
    )
    holder["engine"] = engine
    ids = engine.add_requests(prompts, SamplingParams(), StopConditions(max_new_tokens=16))
    with pytest.raises(KeyboardInterrupt):
        while engine.has_unfinished():
            engine.step()
    aborted = engine.scheduler.running[0].request_id
    engine.abort(aborted)
    outs = {o.request_id: o for o in engine.run_until_done()}
    for rid, p in zip(ids, prompts, strict=True):
        if rid != aborted:
            assert outs[rid].token_ids == greedy_reference(MODEL, p, 16), rid
    assert engine.num_free_blocks == 12
