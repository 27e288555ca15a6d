"""Issue #24 (hardening): damaged files give one clean error naming the fix, a closed pipe ends quietly,
missing extras name the extra to install, and the Python API builds what `retriever build` builds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import copy_small


def test_search_into_a_closed_pipe_ends_without_a_traceback(small_built: Path, tmp_path: Path) -> None:
    """Item 5: `retriever search ... --json | head -1` (here: a pipe already closed by its reader) exits
    without a BrokenPipeError traceback or an "Exception ignored" at exit."""
    config = copy_small(small_built, tmp_path)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte: every write fails with EPIPE
    try:
        done = subprocess.run([sys.executable, "-m", "retriever.cli", "--config", str(config), "search", "vitamin D",
                               "--mode", "sparse", "--json"], stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=300)
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert "Exception ignored" not in done.stderr and done.returncode == 1
