# Emergence across seeds and sizes (README, "Emergence across seeds and sizes"): every model of the
# config is one size; `brainphase emergence` compares their seed distributions, success
# probabilities, crossings in tokens and validation loss, and which metric tracks alignment.
#
# When it runs: only when some model has at least EMERGENCE_MIN_SEEDS seeds (3). Seed
# distributions, the dip test (4+ seeds) and the success probability say little with 2 seeds,
# and the demo (2 seeds) keeps its 10-minute budget. config/emergence.yaml and
# config/scaling.yaml run it; `snakemake {results}/emergence/emergence.h5` runs it for any config.
import shlex

EMERGENCE_MIN_SEEDS = 3
EMERGENCE = any(len(plan.seeds) >= EMERGENCE_MIN_SEEDS for plan in PLANS.values())
EMERGENCE_FIGURES = ["seed_distributions", "success_probability", "mirage", "w1", "abilities_vs_loss",
                     "latent_intent"]  # = brainphase.figures.emergence.EMERGENCE_FIGURES


def emergence_options():
    """`brainphase emergence` options of config section `emergence` (thresholds as NAME=VALUE)."""
    section = config["emergence"]
    thresholds = " ".join(shlex.quote(f"{name}={value}") for name, value in section["thresholds"].items())
    return cli_options(section, exclude=("thresholds",)) + (f" --thresholds {thresholds}" if thresholds else "")


def emergence_outputs():
    """The emergence file and figures when the config has a model with enough seeds (see above)."""
    if not EMERGENCE:
        return []
    return [f"{R}/emergence/emergence.h5"] + [f"{R}/figures/emergence/{name}.{fmt}"
                                              for name in EMERGENCE_FIGURES for fmt in FORMATS]


rule emergence:
    input:
        [f"{R}/trajectory/{model}/trajectory.h5" for model in PLANS],
    output:
        f"{R}/emergence/emergence.h5",
    log:
        f"{R}/logs/emergence/emergence.log",
    benchmark:
        f"{R}/benchmarks/emergence/emergence.tsv"
    params:
        options=emergence_options(),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        ENV
    shell:
        "OMP_NUM_THREADS={threads} brainphase emergence --trajectories {input} {params.options} --out {output} > {log} 2>&1"


rule emergence_figures:
    input:
        f"{R}/emergence/emergence.h5",
    output:
        [
            report(
                f"{R}/figures/emergence/{name}.{fmt}",
                caption=f"../report/emergence_{name}.rst",
                category="Emergence across seeds and sizes",
                labels={"figure": name, "format": fmt},
            )
            for name in EMERGENCE_FIGURES
            for fmt in FORMATS
        ],
    log:
        f"{R}/logs/emergence/figures.log",
    benchmark:
        f"{R}/benchmarks/emergence/figures.tsv"
    params:
        formats=" ".join(FORMATS),
        out_dir=f"{R}/figures/emergence",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        "brainphase emergence-figures --emergence {input} --formats {params.formats} --out-dir {params.out_dir} > {log} 2>&1"
