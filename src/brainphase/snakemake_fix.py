"""Keep ``snakemake --cores N`` to at most N threads at once (Snakemake 9.10.0 to 9.16.x).

In those versions the local scheduler forgets to count the cores of a job it starts when that
job is the only one ready (``JobScheduler.job_selector`` returns early, before
``update_available_resources``), but gives the cores back when the job ends. Every such start
adds a free core: the demo, run with ``--cores 2``, started 3 jobs at once after its first
job and more and more later (Snakemake issue #3913; fixed in 9.17.0, whose requirement
``packaging<26`` conflicts with the nilearn this project needs, so the project cannot simply
require it).

:func:`fix_single_job_scheduling` (called by rules/common.smk) counts those cores in the
affected versions and does nothing in the others.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

#: Snakemake versions with the bug: first affected, first fixed
AFFECTED_VERSIONS = ((9, 10, 0), (9, 17, 0))


def version_tuple(version: str) -> tuple[int, int, int]:
    """``"9.15.0"`` (or ``"9.15.0.post1"``) -> ``(9, 15, 0)``."""
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    if match is None:
        raise ValueError(f"not a Snakemake version: {version!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def is_affected(version: str) -> bool:
    """Whether Snakemake ``version`` has the single-ready-job accounting bug."""
    return AFFECTED_VERSIONS[0] <= version_tuple(version) < AFFECTED_VERSIONS[1]


def fix_single_job_scheduling() -> bool:
    """Patch the running Snakemake's scheduler if its version is affected.

    Returns
    -------
    bool
        True when the scheduler is patched (now or before), False for an unaffected version.
    """
    import snakemake
    from snakemake.scheduling.job_scheduler import JobScheduler

    if not is_affected(snakemake.__version__):
        return False
    if getattr(JobScheduler.job_selector, "brainphase_fixed", False):
        return True
    original = JobScheduler.job_selector

    def job_selector(self, jobs):
        selected = original(self, jobs)
        if len(jobs) == 1 and selected:  # the early return that skipped the accounting
            with self._lock:
                self.update_available_resources(selected)
        return selected

    job_selector.brainphase_fixed = True
    JobScheduler.job_selector = job_selector
    log.debug("snakemake %s: scheduler patched to count the cores of a lone ready job", snakemake.__version__)
    return True
