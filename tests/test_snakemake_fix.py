"""`snakemake --cores 2` runs at most 2 one-thread jobs at once, also after a lone ready job
(brainphase.snakemake_fix; Snakemake issue #3913)."""

import subprocess
import sys

import numpy as np
import pytest
import snakemake

from brainphase.snakemake_fix import is_affected, version_tuple

SNAKEFILE = """
if config.get("fix"):
    from brainphase.snakemake_fix import fix_single_job_scheduling

    fix_single_job_scheduling()

rule all:
    input: expand("b{i}.txt", i=range(3))

rule a:  # the only job ready at first
    output: "a.txt"
    shell: "touch {output}"

rule b:  # three jobs ready at once when a ends
    input: "a.txt"
    output: "b{i}.txt"
    threads: 1
    shell: "date +%s.%N > {output}; sleep 2; date +%s.%N >> {output}"
"""


def most_jobs_at_once(workdir, fix: bool) -> int:
    (workdir / "Snakefile").write_text(SNAKEFILE)
    command = [sys.executable, "-m", "snakemake", "-s", str(workdir / "Snakefile"), "--directory", str(workdir),
               "--cores", "2", "--quiet"] + (["--config", "fix=1"] if fix else [])
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    spans = np.array([[float(t) for t in (workdir / f"b{i}.txt").read_text().split()] for i in range(3)])
    return max(int(np.sum((spans[:, 0] <= start) & (spans[:, 1] > start))) for start in spans[:, 0])


def test_version_ranges():
    assert version_tuple("9.15.0.post1") == (9, 15, 0)
    assert [is_affected(v) for v in ("9.9.0", "9.10.0", "9.16.3", "9.17.0", "10.0.0")] == [False, True, True, False,
                                                                                        False]


def test_at_most_cores_jobs_at_once(tmp_path):
    assert most_jobs_at_once(tmp_path, fix=True) == 2


@pytest.mark.skipif(not is_affected(snakemake.__version__), reason="this Snakemake counts a lone job's cores")
def test_unpatched_affected_snakemake_runs_three_jobs_on_two_cores(tmp_path):
    """The control: without the fix, the bug this module works around shows in the same workflow."""
    assert most_jobs_at_once(tmp_path, fix=False) == 3
