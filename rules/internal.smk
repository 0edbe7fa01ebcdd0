# Internal representation metrics per checkpoint (brainphase internal), read from the activation
# files: no model is loaded. Each step needs the final step's and the previous step's activations
# of the same (model, seed), for CKA.


def internal_inputs(wildcards):
    """This step's activations, the final step's and, after the first step, the previous step's."""
    steps = PLANS[wildcards.model].steps[int(wildcards.seed)]
    step = int(wildcards.step)
    if step not in steps:
        raise ValueError(f"internal: step {step} is not planned for {wildcards.model} seed {wildcards.seed} "
                         f"(planned: {steps})")
    folder = f"{R}/activations/{wildcards.model}/seed{wildcards.seed}"
    inputs = {"activations": f"{folder}/step{step}.h5", "final": f"{folder}/step{steps[-1]}.h5"}
    position = steps.index(step)
    if position > 0:
        inputs["previous"] = f"{folder}/step{steps[position - 1]}.h5"
    return inputs


def internal_files(wildcards):
    """Input function: the internal metrics file of every seed and step of a model."""
    plan = PLANS[wildcards.model]
    return [f"{R}/internal/{wildcards.model}/seed{seed}/step{step}.h5" for seed in plan.seeds for step in plan.steps[seed]]


rule internal:
    input:
        unpack(internal_inputs),
    output:
        f"{R}/internal/{{model}}/seed{{seed}}/step{{step}}.h5",
    log:
        f"{R}/logs/internal/{{model}}_seed{{seed}}_step{{step}}.log",
    benchmark:
        f"{R}/benchmarks/internal/{{model}}_seed{{seed}}_step{{step}}.tsv"
    params:
        options=cli_options(config["internal"]),
        previous=lambda wildcards, input: f"--previous {input.previous}" if "previous" in input.keys() else "",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    shell:
        "OMP_NUM_THREADS={threads} brainphase internal --activations {input.activations} --final {input.final}"
        " {params.previous} {params.options} --out {output} > {log} 2>&1"
