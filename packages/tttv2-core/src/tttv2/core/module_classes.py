"""Which module class builds a spec kind: filled by block packages, read by create_module."""

from __future__ import annotations

from importlib.metadata import entry_points

from tttv2.core.errors import UnknownNameError
from tttv2.core.specs.base import ModuleSpec

ENTRY_POINT_GROUP = "tttv2.modules"

_MODULE_CLASSES: dict[type[ModuleSpec], type] = {}
_loaded = False


def register_module_class(spec_type: type[ModuleSpec], module_class: type) -> type:
    """Declare that ``module_class(spec, device=..., execution_strategy=...)`` builds
    modules for ``spec_type``."""
    _MODULE_CLASSES[spec_type] = module_class
    return module_class


def module_class_for(spec_type: type[ModuleSpec]) -> type:
    """The registered class, importing block packages advertised in the ``tttv2.modules``
    entry-point group on first use."""
    global _loaded
    if spec_type not in _MODULE_CLASSES and not _loaded:
        _loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            ep.load()
    for cls in spec_type.__mro__:
        if cls in _MODULE_CLASSES:
            return _MODULE_CLASSES[cls]
    raise UnknownNameError(
        "module for spec", spec_type.__name__, (c.__name__ for c in _MODULE_CLASSES)
    )
