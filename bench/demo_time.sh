#!/usr/bin/env bash
# Time the whole embedded demo (`snakemake --cores 2`) from a clean results folder.
# Usage: bash bench/demo_time.sh [RESULTS_DIR]   (default: a fresh temporary folder)
# Prints `RESULT demo_seconds=<float>` as its last line. Run `make setup` first.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="$repo/.venv/bin"
[ -x "$bin/snakemake" ] || { echo "error: $bin/snakemake not found; run 'make setup' first" >&2; exit 2; }
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
# the corpus download is a set-up step, not part of the timed run: reuse the repo's copy
mkdir -p "$work/data" && [ -d "$repo/data/downloads" ] && ln -sfn "$repo/data/downloads" "$work/data/downloads"
sed "s#^results: .*#results: $work/results#" "$repo/config/config.yaml" > "$work/config.yaml"
rm -rf "$work/results"
start=$(date +%s.%N)
PATH="$bin:$PATH" "$bin/snakemake" -s "$repo/Snakefile" --directory "$work" --configfile "$work/config.yaml" \
  --cores 2 --quiet > "$work/snakemake.log" 2>&1 || { tail -50 "$work/snakemake.log"; exit 1; }
end=$(date +%s.%N)
echo "results in $work/results"
python3 -c "print(f'RESULT demo_seconds={$end - $start:.1f}')"
