# Per chunk of checkpoints (config checkpoints_per_job), one CPU job (rule encode) reads each
# checkpoint's activations file twice: ridge encoding models (activations x fMRI -> held-out r per
# voxel, layer and subject: `brainphase encode`), then the internal representation metrics
# (TwoNN, CKA, effective rank, anisotropy: `brainphase internal`). No model is loaded. The
# internal metrics need the final step's activations of the same (model, seed) and, after the
# first step, the previous step's, for CKA: the chunk's own folder, the previous chunk's (for the
# chunk's first step) and the final chunk's. One job instead of two per chunk: a 12,320-checkpoint
# study has a third fewer jobs to plan (README, "Running a large study").

from types import SimpleNamespace

# the options every encode job shares, rendered once
ENCODE_OPTIONS = cli_options(config["encode"], exclude=("maps",))
INTERNAL_OPTIONS = cli_options(config["internal"])


def cka_inputs(wildcards):
    """The activation folders internal metrics compare a chunk's steps with: the final chunk's
    (final step) and, unless this is the seed's first chunk, the previous chunk's (the step before
    the chunk's first)."""
    plan, seed = PLANS[wildcards.model], int(wildcards.seed)
    chunks = list(plan.chunks[seed])
    position = chunks.index(wildcards.chunk)
    inputs = {"final": chunk_dir("activations", wildcards.model, seed, chunks[-1])}
    if position > 0:
        inputs["previous"] = chunk_dir("activations", wildcards.model, seed, chunks[position - 1])
    return inputs


def encode_options(wildcards, input, output):
    """Options of `brainphase encode` (`.encode`) and of `brainphase internal` (`.internal`) of
    one chunk: the config's, then one `--each` per checkpoint: its activations, output file, maps
    folder and the checkpoint the activations must come from (encode refuses activations of
    other weights); its previous step's activations (CKA)."""
    seed, chunk = int(wildcards.seed), chunk_steps(wildcards)
    steps = PLANS[wildcards.model].steps[seed]
    first = steps.index(chunk[0])  # the step before the chunk's first is the previous chunk's last
    encode, internal = [ENCODE_OPTIONS], [INTERNAL_OPTIONS, f"--final {input.final}/step{steps[-1]}.h5"]
    for i, step in enumerate(chunk):
        activations = f"{input.activations}/step{step}.h5"
        source, revision = checkpoint_of(wildcards.model, seed, step)
        maps = f" --maps-dir {R}/maps/{wildcards.model}/seed{seed}/step{step}" if config["encode"]["maps"] else ""
        weights = cli_options({"checkpoint": source, "checkpoint_revision": revision})
        encode.append(each_option(f"--activations {activations} --out {output.scores}/step{step}.h5{maps} {weights}"))
        previous = ""
        if first + i > 0:
            folder = input.activations if i > 0 else input.previous
            previous = f" --previous {folder}/step{steps[first + i - 1]}.h5"
        internal.append(each_option(f"--activations {activations} --out {output.internal}/step{step}.h5{previous}"))
    return SimpleNamespace(encode=" ".join(encode), internal=" ".join(internal))


rule encode:
    input:
        unpack(cka_inputs),
        activations=chunk_dir("activations", "{model}", "{seed}", "{chunk}"),
        responses=f"{R}/fmri/responses.h5",
    output:
        scores=directory(chunk_dir("scores", "{model}", "{seed}", "{chunk}")),
        internal=directory(chunk_dir("internal", "{model}", "{seed}", "{chunk}")),
    log:
        f"{R}/logs/encode/{{model}}_seed{{seed}}_{{chunk}}.log",
    benchmark:
        f"{R}/benchmarks/encode/{{model}}_seed{{seed}}_{{chunk}}.tsv"
    params:
        options=encode_options,
    threads: 1
    resources:
        mem_mb=8000,
        runtime=150 * config["checkpoints_per_job"],
    conda:
        ENV
    shell:
        "export OMP_NUM_THREADS={threads}; brainphase encode {params.options.encode}"
        " --responses {input.responses} > {log} 2>&1;"
        " brainphase internal {params.options.internal} >> {log} 2>&1"
