"""``tttv2 models``: the installed model plugins, by Hugging Face architecture."""

from __future__ import annotations

import argparse
import json

from tttv2.cli.options import add_json
from tttv2.core.model_plugins import ENTRY_POINT_GROUP, list_model_plugins


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "models",
        help="list installed model plugins",
        description=f"List the model plugins installed in this environment (entry-point group "
        f"{ENTRY_POINT_GROUP!r}), keyed by the Hugging Face architecture name a checkpoint's "
        'config.json gives in "architectures".',
    )
    add_json(p, "the plugins")


def run(args: argparse.Namespace) -> int:
    plugins = list_model_plugins()
    if args.json:
        print(
            json.dumps({"models": [{"architecture": a, "plugin": v} for a, v in plugins.items()]})
        )
    elif not plugins:
        print(f"no model plugins installed (entry-point group {ENTRY_POINT_GROUP!r})")
    else:
        width = max(len(a) for a in plugins)
        for arch, value in plugins.items():
            print(f"{arch:<{width}}  {value}")
    return 0
