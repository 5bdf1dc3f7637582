"""One module per verb. Each has ``add_parser(subparsers)`` and ``run(args) -> int``;
a verb with ``PASSTHROUGH = True`` instead takes its raw arguments in ``run_argv(argv)``."""

from types import ModuleType

from tttv2.cli.commands import bench, generate, hw, models, serve, validate

VERBS: dict[str, ModuleType] = {
    "generate": generate,
    "serve": serve,
    "validate": validate,
    "bench": bench,
    "models": models,
    "hw": hw,
}
