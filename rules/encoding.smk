# Ridge encoding models: activations x fMRI -> held-out r per voxel, layer and subject.


rule encode:
    input:
        activations=f"{R}/activations/{{model}}/seed{{seed}}/step{{step}}.h5",
        responses=f"{R}/fmri/responses.h5",
    output:
        f"{R}/scores/{{model}}/seed{{seed}}/step{{step}}.h5",
    log:
        f"{R}/logs/encode/{{model}}_seed{{seed}}_step{{step}}.log",
    benchmark:
        f"{R}/benchmarks/encode/{{model}}_seed{{seed}}_step{{step}}.tsv"
    params:
        options=cli_options(config["encode"], exclude=("maps",)),
        maps=lambda w: f"--maps-dir {R}/maps/{w.model}/seed{w.seed}/step{w.step}" if config["encode"]["maps"] else "",
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        ENV
    shell:
        "OMP_NUM_THREADS={threads} brainphase encode {params.options} {params.maps}"
        " --activations {input.activations} --responses {input.responses} --out {output} > {log} 2>&1"
