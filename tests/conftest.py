"""Fixtures shared by the test modules: the real data mirror and a one-thread torch setting."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

#: The offline mirror: ``$MIFGSM_MIRROR``, else ``../shared/data`` beside the checkout.
MIRROR = Path(os.environ.get("MIFGSM_MIRROR") or Path(__file__).resolve().parents[2] / "shared" / "data")


@pytest.fixture(scope="module")
def mirror() -> Path:
    """The real data mirror; tests that need it are skipped where it is missing."""
    if not (MIRROR / "lfw" / "pairs.txt").is_file():
        pytest.skip(f"data mirror not found at {MIRROR} (set MIFGSM_MIRROR)")
    return MIRROR


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """Tiny networks train fastest on one CPU thread, and timings stay stable on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
