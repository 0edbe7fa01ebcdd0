"""Each benchmark's --quick mode runs and ends with a parseable `RESULT key=value ...` line."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("script, keys", [
    ("extract.py", {"extract_vs_forward", "tokens_per_s", "peak_rss_gib", "weights_gib"}),
    ("ridge.py", {"ridge_speedup_vs_himalaya", "max_abs_diff", "gemm_fraction", "peak_rss_gib"}),
    ("load_fmri.py", {"load_peak_gib", "load_seconds"}),
    ("phases.py", {"phases_seconds", "planted_accuracy"}),
])
def test_quick_bench_prints_result_line(script, keys):
    result = subprocess.run([sys.executable, str(REPO / "bench" / script), "--quick"], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("RESULT "), last
    values = dict(item.split("=", 1) for item in last.split()[1:])
    assert set(values) == keys
    for value in values.values():
        float(value)  # every figure is a number
