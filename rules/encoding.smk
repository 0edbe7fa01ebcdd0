# Per checkpoint, one CPU job (rule encode) reads the activations file twice: ridge encoding models
# (activations x fMRI -> held-out r per voxel, layer and subject: `brainphase encode`), then the
# internal representation metrics (TwoNN, CKA, effective rank, anisotropy: `brainphase internal`).
# No model is loaded. The internal metrics need the final step's activations of the same (model,
# seed) and, after the first step, the previous step's, for CKA. One job instead of two per
# checkpoint: a 12,320-checkpoint study has a third fewer jobs to plan (README, "Running a large
# study"), and encoding still runs one checkpoint per job.

from types import SimpleNamespace

# the options every encode job shares, rendered once
ENCODE_OPTIONS = cli_options(config["encode"], exclude=("maps",))
INTERNAL_OPTIONS = cli_options(config["internal"])


def cka_inputs(wildcards):
    """The activations internal metrics compare a step with: the final step's and, after the first
    step, the previous step's (of the same model and seed)."""
    steps = PLANS[wildcards.model].steps[int(wildcards.seed)]
    step = int(wildcards.step)
    if step not in steps:
        raise ValueError(f"encode: step {step} is not planned for {wildcards.model} seed {wildcards.seed} "
                         f"(planned: {steps})")
    folder = f"{R}/activations/{wildcards.model}/seed{wildcards.seed}"
    inputs = {"final": f"{folder}/step{steps[-1]}.h5"}
    position = steps.index(step)
    if position > 0:
        inputs["previous"] = f"{folder}/step{steps[position - 1]}.h5"
    return inputs


def encode_options(wildcards, input):
    """Options of `brainphase encode` (`.encode`: the config's, the maps folder, and the checkpoint
    the activations must come from: encode refuses activations of other weights) and of
    `brainphase internal` (`.internal`: the config's and the previous step's activations) of one checkpoint."""
    source, revision = checkpoint_of(wildcards)
    maps = f" --maps-dir {R}/maps/{wildcards.model}/seed{wildcards.seed}/step{wildcards.step}" if config["encode"]["maps"] else ""
    previous = f" --previous {input.previous}" if "previous" in input.keys() else ""
    return SimpleNamespace(encode=f"{ENCODE_OPTIONS}{maps} " + cli_options({"checkpoint": source, "checkpoint_revision": revision}),
                           internal=INTERNAL_OPTIONS + previous)


rule encode:
    input:
        unpack(cka_inputs),
        activations=ACTIVATIONS,
        responses=f"{R}/fmri/responses.h5",
    output:
        scores=f"{R}/scores/{{model}}/seed{{seed}}/step{{step}}.h5",
        internal=f"{R}/internal/{{model}}/seed{{seed}}/step{{step}}.h5",
    log:
        f"{R}/logs/encode/{{model}}_seed{{seed}}_step{{step}}.log",
    benchmark:
        f"{R}/benchmarks/encode/{{model}}_seed{{seed}}_step{{step}}.tsv"
    params:
        options=encode_options,
    threads: 1
    resources:
        mem_mb=8000,
        runtime=150,
    conda:
        ENV
    shell:
        "export OMP_NUM_THREADS={threads}; brainphase encode {params.options.encode} --activations {input.activations}"
        " --responses {input.responses} --out {output.scores} > {log} 2>&1;"
        " brainphase internal --activations {input.activations} --final {input.final} {params.options.internal}"
        " --out {output.internal} >> {log} 2>&1"
