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
snakemake under cProfile and writes the stats to OUT.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "cluster_scale.yaml"))
    parser.add_argument("--profile", help="write cProfile stats of the snakemake process here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="brainphase-plan-") as tmp:
        tmp = Path(tmp)
        (tmp / "bids").mkdir()
        (tmp / "words.tsv").write_text("run\tword_index\tword\tonset\toffset\n")
        overlay = tmp / "overlay.yaml"
        overlay.write_text(yaml.safe_dump({"results": str(tmp / "results"), "fmri": {"root": str(tmp / "bids")},
                                           "corpus": {"stimulus": str(tmp / "words.tsv")}}))
        profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
        command = [sys.executable, *profile, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"),
                   "-d", str(tmp / "work"), "--configfile", args.config, str(overlay)]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode != 0:
            sys.exit(f"dry run failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        table = result.stdout.split("Job stats:")[-1]
        counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)}
        n_jobs = counts.pop("total")
        config = load_config([args.config, overlay])
        planned = job_counts(config, plan_models(config, config["results"]))
    print("jobs per rule:", ", ".join(f"{rule} {n}" for rule, n in sorted(counts.items())))
    print(f"brainphase plan agrees: {dict(planned) == counts}")
    print(f"snakemake CPU seconds: user {usage.ru_utime:.1f}, system {usage.ru_stime:.1f}")
    print(f"RESULT dag_seconds={seconds:.1f} n_jobs={n_jobs}")


if __name__ == "__main__":
    main()
