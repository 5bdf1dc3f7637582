"""huge_page_buffer: aligned, untouched, marked for huge pages where THP can be asked for,
an ordinary allocation where not."""

from __future__ import annotations

import importlib
import sys

import pytest
import torch

from tttv2.hw.memory.huge_pages import HUGE_PAGE_BYTES, huge_page_buffer

huge_pages = importlib.import_module("tttv2.hw.memory.huge_pages")


@pytest.fixture
def madvise_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(huge_pages, "huge_pages_available", lambda: True)
    monkeypatch.setattr(
        huge_pages, "_madvise", lambda: lambda addr, n, advice: calls.append((addr, n, advice)) or 0
    )
    return calls


@pytest.mark.parametrize("nbytes", [HUGE_PAGE_BYTES, 5 * HUGE_PAGE_BYTES + 12345])
def test_buffer_starts_on_a_huge_page_and_marks_every_page_it_covers(madvise_calls, nbytes):
    buf = huge_page_buffer(nbytes)
    assert buf.dtype == torch.uint8 and buf.numel() == nbytes and buf.device.type == "cpu"
    assert buf.data_ptr() % HUGE_PAGE_BYTES == 0
    [(addr, length, advice)] = madvise_calls
    assert advice == 14  # MADV_HUGEPAGE
    assert addr == buf.data_ptr() and length % HUGE_PAGE_BYTES == 0
    assert length >= nbytes // HUGE_PAGE_BYTES * HUGE_PAGE_BYTES  # every whole page of the buffer
    buf.fill_(7)  # the whole buffer is writable memory
    assert int(buf[-1]) == 7


def test_small_buffers_and_platforms_without_thp_get_an_ordinary_allocation(
    madvise_calls, monkeypatch
):
    assert huge_page_buffer(HUGE_PAGE_BYTES - 1).numel() == HUGE_PAGE_BYTES - 1
    monkeypatch.setattr(huge_pages, "huge_pages_available", lambda: False)
    assert huge_page_buffer(3 * HUGE_PAGE_BYTES).numel() == 3 * HUGE_PAGE_BYTES
    assert madvise_calls == []


def test_negative_size_is_refused():
    with pytest.raises(ValueError, match="nbytes=-1"):
        huge_page_buffer(-1)


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="transparent huge pages are a Linux feature"
)
def test_thp_mode_is_read_from_sysfs(tmp_path, monkeypatch):
    mode = tmp_path / "enabled"
    monkeypatch.setattr(huge_pages, "_THP_MODE", mode)
    results = {}
    for text in ("always [madvise] never", "[always] madvise never", "always madvise [never]"):
        mode.write_text(text)
        huge_pages.huge_pages_available.cache_clear()
        results[text] = huge_pages.huge_pages_available()
    mode.unlink()
    huge_pages.huge_pages_available.cache_clear()
    missing = huge_pages.huge_pages_available()
    huge_pages.huge_pages_available.cache_clear()
    assert results == {
        "always [madvise] never": True,
        "[always] madvise never": True,
        "always madvise [never]": False,
    }
    assert missing is False
