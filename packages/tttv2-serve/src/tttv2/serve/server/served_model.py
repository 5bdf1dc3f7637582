"""What the server serves: an engine over one model, its tokenizer and chat template."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tttv2.serve.runtime import LLMEngine
from tttv2.serve.server.chat_template import ChatTemplate


@dataclass
class ServedModel:
    """``tokenizer`` is a ``tokenizers.Tokenizer``; ``engine`` must have been built with a
    ``detokenize`` callable (text output and stop strings need it). ``eos_token_ids`` end a
    generation unless a request sets ``ignore_eos``. ``chat_template`` None: the chat
    endpoint answers 400."""

    name: str
    engine: LLMEngine
    tokenizer: Any
    eos_token_ids: tuple[int, ...] = ()
    chat_template: ChatTemplate | None = None
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        if self.engine.detokenize is None:
            raise ValueError(
                "ServedModel.engine has no detokenize callable: build the LLMEngine with detokenize=..."
            )

    def encode(self, text: str, add_special_tokens: bool) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=add_special_tokens).ids)

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id], skip_special_tokens=False)
