"""Hypothesis profiles of the checkpoint-reader fuzz targets (test_weights_fuzz.py).

``tttv2-fuzz-ci`` (the default) runs in the normal test job: a fixed number of examples,
derandomised (the same examples on every run and machine) and a per-example deadline.
``tttv2-fuzz-long`` is for a longer local run, choosing fresh examples each time::

    TTTV2_FUZZ_PROFILE=tttv2-fuzz-long uv run pytest packages/tttv2-blocks/tests/weights/test_weights_fuzz.py
    TTTV2_FUZZ_EXAMPLES=200000 TTTV2_FUZZ_PROFILE=tttv2-fuzz-long uv run pytest ...
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

CI_EXAMPLES = 300

settings.register_profile(
    "tttv2-fuzz-ci",
    max_examples=CI_EXAMPLES,
    deadline=timedelta(seconds=2),  # file I/O on a loaded 2-core CI machine; ~1 ms here
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
settings.register_profile(
    "tttv2-fuzz-long",
    max_examples=int(os.environ.get("TTTV2_FUZZ_EXAMPLES", "20000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def fuzz_settings() -> settings:
    """The profile named by ``TTTV2_FUZZ_PROFILE`` (default ``tttv2-fuzz-ci``)."""
    return settings.get_profile(os.environ.get("TTTV2_FUZZ_PROFILE", "tttv2-fuzz-ci"))
