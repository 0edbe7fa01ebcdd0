# Over training: aggregate the per-checkpoint files (inside the chunk folders), label the phases, draw the figures.


rule aggregate:
    input:
        scores=chunk_dirs("scores"),
        tasks=chunk_dirs("tasks"),
        internal=chunk_dirs("internal"),
        responses=f"{R}/fmri/responses.h5",
    output:
        f"{R}/trajectory/{{model}}/metrics.h5",
    log:
        f"{R}/logs/aggregate/{{model}}.log",
    benchmark:
        f"{R}/benchmarks/aggregate/{{model}}.tsv"
    params:
        # the per-checkpoint files inside the chunk folders, every step of every seed
        scores=lambda wildcards: per_step_files("scores", wildcards.model),
        tasks=lambda wildcards: per_step_files("tasks", wildcards.model),
        internal=lambda wildcards: per_step_files("internal", wildcards.model),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        ENV
    shell:
        "brainphase aggregate --scores {params.scores} --tasks {params.tasks} --internal {params.internal}"
        " --responses {input.responses}"
        " --voxel-blocks {config[phases][voxel_blocks]} --out {output} > {log} 2>&1"


rule phases:
    input:
        f"{R}/trajectory/{{model}}/metrics.h5",
    output:
        f"{R}/trajectory/{{model}}/trajectory.h5",
    log:
        f"{R}/logs/phases/{{model}}.log",
    benchmark:
        f"{R}/benchmarks/phases/{{model}}.tsv"
    params:
        options=cli_options(config["phases"]),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        "brainphase phases {params.options} --metrics {input} --out {output} > {log} 2>&1"


rule figures:
    input:
        f"{R}/trajectory/{{model}}/trajectory.h5",
    output:
        [
            report(
                f"{R}/figures/{{model}}/{name}.{fmt}",
                caption=f"../report/{name}.rst",
                category="Trajectory over training",
                subcategory="{model}",
                labels={"model": "{model}", "figure": name, "format": fmt},
            )
            for name in FIGURES
            for fmt in FORMATS
        ],
        table=f"{R}/figures/{{model}}/alignment_table.tsv",
    log:
        f"{R}/logs/figures/{{model}}.log",
    benchmark:
        f"{R}/benchmarks/figures/{{model}}.tsv"
    params:
        formats=" ".join(FORMATS),
        out_dir=f"{R}/figures/{{model}}",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        "brainphase figures --trajectory {input} --formats {params.formats} --out-dir {params.out_dir} > {log} 2>&1"
