# Checkpoints: train the demo model, then one job per chunk of checkpoints (rule measure): each
# checkpoint's weights are loaded once for its activations and task metrics.


def train_options(wildcards):
    train = dict(config["models"][wildcards.model]["train"])
    steps = PLANS[wildcards.model].steps[int(wildcards.seed)]
    options = {k: v for k, v in train.items() if k not in ("max_steps", "n_checkpoints")}
    return cli_options(options) + " --steps " + " ".join(str(s) for s in steps)


rule train:
    input:
        train=f"{R}/corpus/train.txt",
        valid=f"{R}/corpus/valid.txt",
    output:
        directory(f"{R}/models/{{model}}/seed{{seed}}"),
    log:
        f"{R}/logs/train/{{model}}_seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{model}}_seed{{seed}}.tsv"
    params:
        options=train_options,
        corpus_dir=f"{R}/corpus",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    conda:
        ENV
    shell:
        "OMP_NUM_THREADS={threads} brainphase train {params.options} --threads {threads}"
        " --model-id {wildcards.model} --seed {wildcards.seed}"
        " --corpus-dir {params.corpus_dir} --out-dir {output} > {log} 2>&1"


def measure_inputs(wildcards):
    """The checkpoints (trained here), the stimulus and the held-out text of task heldout_text, if any."""
    inputs = {"words": STIMULUS}
    if PLANS[wildcards.model].trained:
        inputs["checkpoint"] = f"{R}/models/{wildcards.model}/seed{wildcards.seed}"
    text = tasks_text(wildcards.model)
    if text is not None:
        inputs["text"] = text
    return inputs


# the options every measure job shares, rendered once (not per job: a study has ~10^4 of them)
MEASURE_OPTIONS = " ".join([
    cli_options(config["extract"], exclude=("keep",)),
    cli_options({f"tasks_{key}": value for key, value in config["tasks"].items() if key != "text"}),
])


def measure_options(wildcards, input, output):
    """`brainphase measure` options of one chunk: extraction, stimulus, tasks, then one `--each`
    per checkpoint (its source, revision, labels and output files)."""
    text = f" --tasks-text {shlex.quote(input.text)}" if "text" in input.keys() else ""
    seed = int(wildcards.seed)
    each = " ".join(
        each_option(f"{checkpoint_options(wildcards.model, seed, step)} --activations-out {output.activations}/step{step}.h5"
                    f" --tasks-out {output.tasks}/step{step}.h5")
        for step in chunk_steps(wildcards))
    return f"{MEASURE_OPTIONS} {STIMULUS_OPTION} {shlex.quote(input.words)}{text} {each}"


ACTIVATIONS = directory(chunk_dir("activations", "{model}", "{seed}", "{chunk}"))


rule measure:
    input:
        unpack(measure_inputs),
    output:
        # extract.keep: false -> temporary, removed once every encode job reading it is done (rules/encoding.smk)
        activations=ACTIVATIONS if config["extract"]["keep"] else temp(ACTIVATIONS),
        tasks=directory(chunk_dir("tasks", "{model}", "{seed}", "{chunk}")),
    log:
        f"{R}/logs/measure/{{model}}_seed{{seed}}_{{chunk}}.log",
    benchmark:
        f"{R}/benchmarks/measure/{{model}}_seed{{seed}}_{{chunk}}.tsv"
    params:
        options=measure_options,
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120 * config["checkpoints_per_job"],
    conda:
        ENV
    shell:
        "OMP_NUM_THREADS={threads} brainphase measure {params.options} > {log} 2>&1"
