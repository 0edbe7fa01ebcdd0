"""Time of the dry run of the 12,320-checkpoint study (config/cluster_scale.yaml).

Runs ``snakemake -n --configfile config/cluster_scale.yaml OVERLAY`` in a temporary working
directory. The overlay only points ``fmri.root``, ``corpus.stimulus`` and ``results`` at an empty
BIDS folder, a header-only word TSV and a temporary results folder (Snakemake needs the inputs
that no rule makes to exist; the study itself is unchanged). Checks the job count against
``brainphase plan`` (no Snakemake) and prints, last,
``RESULT dag_seconds=<float> n_jobs=<int>`` (``dag_seconds``: wall clock of the whole dry run,
DAG and job listing; the CPU time of the snakemake process is printed above it, since on a busy
machine the wall clock also measures the other processes).

``--config FILE`` dry-runs another config (with the same overlay); ``--profile OUT`` runs
snakemake under cProfile and writes the stats to OUT; ``--compare-one-per-job`` also dry-runs the
study with ``checkpoints_per_job: 1`` and adds ``one_per_job_seconds``, ``one_per_job_n_jobs``
and ``chunk_speedup`` (one-per-job seconds / chunked seconds, both measured in this run).
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from brainphase.config import plan_models
from brainphase.plan import job_counts, load_config

ROOT = Path(__file__).resolve().parents[1]


def dry_run(config_file: str, tmp: Path, overrides: dict, profile: str | None = None) -> tuple[float, dict, float]:
    """``snakemake -n`` of ``config_file`` with the stand-in overlay plus ``overrides``.

    Returns the wall seconds, the jobs per rule (``total`` included) and the CPU seconds (user +
    system) of the snakemake process; exits when the dry run fails or ``brainphase plan``
    disagrees with its job counts.
    """
    work = Path(tempfile.mkdtemp(dir=tmp))
    (work / "bids").mkdir()
    (work / "words.tsv").write_text("run\tword_index\tword\tonset\toffset\n")
    overlay = work / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"results": str(work / "results"), "fmri": {"root": str(work / "bids")},
                                       "corpus": {"stimulus": str(work / "words.tsv")}, **overrides}))
    profiling = ["-m", "cProfile", "-o", profile] if profile else []
    command = [sys.executable, *profiling, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"),
               "-d", str(work / "work"), "--configfile", config_file, str(overlay)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"dry run failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    table = result.stdout.split("Job stats:")[-1]
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)}
    config = load_config([config_file, overlay])
    planned = job_counts(config, plan_models(config, config["results"]))
    if dict(planned) != {rule: n for rule, n in counts.items() if rule != "total"}:
        sys.exit(f"brainphase plan counts {dict(planned)}, snakemake -n {counts}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, counts, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "cluster_scale.yaml"))
    parser.add_argument("--profile", help="write cProfile stats of the snakemake process here")
    parser.add_argument("--compare-one-per-job", action="store_true",
                        help="also dry-run the study with checkpoints_per_job: 1 (one measure and one encode "
                             "job per checkpoint) and print the ratio")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="brainphase-plan-") as tmp:
        seconds, counts, cpu = dry_run(args.config, Path(tmp), {}, args.profile)
        n_jobs = counts.pop("total")
        print("jobs per rule:", ", ".join(f"{rule} {n}" for rule, n in sorted(counts.items())))
        print(f"brainphase plan agrees; snakemake CPU seconds {cpu:.1f}")
        result = f"RESULT dag_seconds={seconds:.1f} n_jobs={n_jobs}"
        if args.compare_one_per_job:
            single_seconds, single_counts, single_cpu = dry_run(args.config, Path(tmp), {"checkpoints_per_job": 1})
            print(f"checkpoints_per_job 1: {single_counts['total']} jobs, {single_seconds:.1f} s "
                  f"(snakemake CPU seconds {single_cpu:.1f})")
            result += (f" one_per_job_seconds={single_seconds:.1f} one_per_job_n_jobs={single_counts['total']}"
                       f" chunk_speedup={single_seconds / seconds:.2f}")
    print(result)


if __name__ == "__main__":
    main()
