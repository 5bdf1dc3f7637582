"""The prompt as token ids, checked against the vocabulary and the context limit."""

from __future__ import annotations

from collections.abc import Sequence

from tttv2.cli.errors import UsageError
from tttv2.core.model_plugins import LoadedModel

DEFAULT_PROMPT = "The quick brown fox"


def prompt_ids(loaded: LoadedModel, text: str | None, ids: Sequence[int] | None) -> list[int]:
    if ids is None:
        if loaded.tokenizer is None:
            raise UsageError(
                "the checkpoint has no tokenizer.json; give the prompt as --prompt-ids 1,2,3"
            )
        ids = loaded.tokenizer.encode(DEFAULT_PROMPT if text is None else text).ids
        if not ids:
            raise UsageError("--prompt encodes to no tokens; give a non-empty prompt")
    ids = list(ids)
    vocab = loaded.spec.vocab_size
    bad = [i for i in ids if i >= vocab]
    if bad:
        raise UsageError(
            f"--prompt-ids: token id {bad[0]} is outside the vocabulary (size {vocab})"
        )
    if len(ids) >= loaded.max_context:
        raise UsageError(
            f"the prompt has {len(ids)} tokens but the model's context is {loaded.max_context} tokens "
            f"(at most {loaded.max_context - 1} prompt tokens leave room to generate)"
        )
    return ids
