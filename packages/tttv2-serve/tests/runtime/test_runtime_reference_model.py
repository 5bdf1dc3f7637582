"""The test model itself: its paged forward must equal its cache-free dense forward, or
nothing the other tests conclude through it would hold."""

import torch
from reference_causal_lm import ReferenceCausalLM
from runtime_helpers import assert_close

from tttv2.core import ExecutionMode, KVBlockManager


def test_paged_chunks_match_dense_forward():
    model = ReferenceCausalLM(seed=3)
    blocks = KVBlockManager(num_blocks=32, block_size=4, max_seq_len=256)
    cache = model.new_cache(32, 4)
    a, b = torch.randint(0, 64, (21,)).tolist(), torch.randint(0, 64, (9,)).tolist()
    model.set_mode(ExecutionMode.CONTINUOUS_BATCH)
    got_a, got_b = [], []
    # ragged passes: a in chunks of 7, b in chunks of 3 then one token at a time
    cuts_a, cuts_b = [0, 7, 14, 21, 21, 21], [0, 3, 6, 7, 8, 9]
    for step in range(5):
        seqs, lens, toks = [], [], []
        for sid, seq, cuts in ((0, a, cuts_a), (1, b, cuts_b)):
            lo, hi = cuts[step], cuts[step + 1]
            if hi > lo:
                seqs.append(sid), lens.append(hi - lo), toks.extend(seq[lo:hi])
        meta = blocks.prepare(seqs, lens, ExecutionMode.CONTINUOUS_BATCH, logits="all")
        with torch.no_grad():
            logits = model(torch.tensor(toks), meta, cache)
        row = 0
        for sid, n in zip(seqs, lens, strict=True):
            (got_a if sid == 0 else got_b).append(logits[row : row + n])
            row += n
    assert_close(torch.cat(got_a), model.dense_logits(a), tol=1e-4)
    assert_close(torch.cat(got_b), model.dense_logits(b), tol=1e-4)


def test_reading_an_unwritten_slot_poisons_the_logits():
    model = ReferenceCausalLM(seed=3)
    blocks = KVBlockManager(num_blocks=8, block_size=4, max_seq_len=256)
    cache = model.new_cache(8, 4)
    model.set_mode(ExecutionMode.DECODE)
    blocks.add_sequence(0)
    blocks.reserve(0, 5)  # claims 5 cached tokens that were never written
    meta = blocks.prepare([0], [1], ExecutionMode.DECODE)
    with torch.no_grad():
        assert model(torch.tensor([1]), meta, cache).isnan().all()
