"""tttv2.serve.server: an OpenAI-compatible HTTP server over the continuous-batching engine.

    served = ServedModel("my-model", engine, tokenizer, eos_token_ids=(2,), chat_template=...)
    app = create_app(served, ServerConfig(api_key=None, max_queue=64))
    run_server(app, "127.0.0.1", 8000)

``tttv2 serve`` (tttv2-cli) builds all of this from a checkpoint folder.
"""

from tttv2.serve.server.app import ServerConfig, create_app
from tttv2.serve.server.chat_template import ChatTemplate, ChatTemplateError
from tttv2.serve.server.engine_loop import EngineLoop
from tttv2.serve.server.errors import APIError
from tttv2.serve.server.launch import DrainingServer, make_server, run_server
from tttv2.serve.server.metrics import ServerMetrics
from tttv2.serve.server.served_model import ServedModel

__all__ = [
    "APIError",
    "ChatTemplate",
    "ChatTemplateError",
    "DrainingServer",
    "EngineLoop",
    "ServedModel",
    "ServerConfig",
    "ServerMetrics",
    "create_app",
    "make_server",
    "run_server",
]
