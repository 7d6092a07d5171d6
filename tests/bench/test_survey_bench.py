"""salt.bench.survey's measurement of a child's peak memory."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from salt.bench.survey import child

MIB = 2**20


def test_a_childs_peak_is_its_own_not_this_processs():
    bulk = np.ones(600 * MIB // 8)  # this process's peak: at least 600 MiB more
    del bulk
    allocate = "import numpy as np; bulk = np.ones(100 * 2**20 // 8); print('done')"
    _, peak_mib, stdout = child([sys.executable, "-c", allocate])
    assert stdout == "done\n"
    assert 100 < peak_mib < 300


def test_a_failed_child_is_named():
    with pytest.raises(SystemExit, match="failed: .* -c import sys; sys.exit"):
        child([sys.executable, "-c", "import sys; sys.exit(3)"])
