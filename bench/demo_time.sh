#!/usr/bin/env bash
# Time the whole embedded demo (`snakemake --cores 2`) from a clean results folder.
# Usage: bash bench/demo_time.sh [RESULTS_DIR [CONFIG]]
#   RESULTS_DIR: default a fresh temporary folder; CONFIG: default config/config.yaml (the demo),
#   e.g. config/emergence.yaml to time that study the same way (its time is then `demo_seconds`).
# Prints the seconds of each rule summed over its jobs (the `s` column of the Snakemake `benchmark:`
# files under RESULTS_DIR/results/benchmarks; jobs run 2 at a time, so the sums exceed the wall
# clock), then `RESULT demo_seconds=<float> <rule>_s=<float> ...` as its last line.
# Run `make setup` first.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="$repo/.venv/bin"
[ -x "$bin/snakemake" ] || { echo "error: $bin/snakemake not found; run 'make setup' first" >&2; exit 2; }
work="${1:-$(mktemp -d)}"
config="${2:-$repo/config/config.yaml}"
[ -f "$config" ] || { echo "error: config file $config not found" >&2; exit 2; }
mkdir -p "$work"
# the corpus download is a set-up step, not part of the timed run: reuse the repo's copy
mkdir -p "$work/data" && [ -d "$repo/data/downloads" ] && ln -sfn "$repo/data/downloads" "$work/data/downloads"
sed "s#^results: .*#results: $work/results#" "$config" > "$work/config.yaml"
grep -q "^results: $work/results\$" "$work/config.yaml" || { echo "error: $config has no top-level 'results:' line" >&2; exit 2; }
rm -rf "$work/results"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s.%N)
PATH="$bin:$PATH" "$bin/snakemake" -s "$repo/Snakefile" --directory "$work" --configfile "$work/config.yaml" \
  --cores 2 --quiet > "$work/snakemake.log" 2>&1 || { tail -50 "$work/snakemake.log"; exit 1; }
end=$(date +%s.%N)
echo "results in $work/results"
echo "load average (1, 5, 15 min) before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg) (other processes share the cores)"
"$bin/python" - "$work/results/benchmarks" "$(python3 -c "print(f'{$end - $start:.1f}')")" <<'PY'
import csv, sys
from pathlib import Path

root, demo_seconds = Path(sys.argv[1]), sys.argv[2]
per_rule = {}  # rule -> (jobs, summed seconds): benchmarks/{rule}.tsv or benchmarks/{rule}/*.tsv
for path in sorted(root.rglob("*.tsv")):
    rule = path.stem if path.parent == root else path.relative_to(root).parts[0]
    with open(path, newline="") as handle:
        seconds = sum(float(row["s"]) for row in csv.DictReader(handle, delimiter="\t"))
    jobs, total = per_rule.get(rule, (0, 0.0))
    per_rule[rule] = (jobs + 1, total + seconds)
print(f"{'rule':<12}{'jobs':>6}{'seconds':>10}")
for rule, (jobs, total) in sorted(per_rule.items(), key=lambda item: -item[1][1]):
    print(f"{rule:<12}{jobs:>6}{total:>10.1f}")
print(f"{'all jobs':<12}{sum(j for j, _ in per_rule.values()):>6}{sum(t for _, t in per_rule.values()):>10.1f}")
keys = " ".join(f"{rule}_s={total:.1f}" for rule, (_, total) in sorted(per_rule.items()))
print(f"RESULT demo_seconds={demo_seconds} {keys}")
PY
