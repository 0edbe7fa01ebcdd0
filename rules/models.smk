# Checkpoints: train the demo model, then one job per checkpoint (rule measure): the weights are
# loaded once for the activations and the task metrics.


def train_options(wildcards):
    train = dict(config["models"][wildcards.model]["train"])
    plan = plan_of(wildcards)
    steps = plan.steps[int(wildcards.seed)]
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
    """The checkpoint (trained here), the stimulus and the held-out text of task heldout_text, if any."""
    inputs = {"words": STIMULUS}
    if PLANS[wildcards.model].trained:
        inputs["checkpoint"] = f"{R}/models/{wildcards.model}/seed{wildcards.seed}"
    text = tasks_text(wildcards.model)
    if text is not None:
        inputs["text"] = text
    return inputs


rule measure:
    input:
        unpack(measure_inputs),
    output:
        activations=f"{R}/activations/{{model}}/seed{{seed}}/step{{step}}.h5",
        tasks=f"{R}/tasks/{{model}}/seed{{seed}}/step{{step}}.h5",
    log:
        f"{R}/logs/measure/{{model}}_seed{{seed}}_step{{step}}.log",
    benchmark:
        f"{R}/benchmarks/measure/{{model}}_seed{{seed}}_step{{step}}.tsv"
    params:
        checkpoint=checkpoint_options,
        extract=cli_options(config["extract"]),
        tasks=cli_options({f"tasks_{key}": value for key, value in config["tasks"].items() if key != "text"}),
        text=tasks_text_option,
        stimulus_option=STIMULUS_OPTION,
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        ENV
    shell:
        "OMP_NUM_THREADS={threads} brainphase measure {params.checkpoint} {params.extract}"
        " {params.stimulus_option} {input.words} {params.tasks} {params.text}"
        " --activations-out {output.activations} --tasks-out {output.tasks} > {log} 2>&1"
