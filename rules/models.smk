# Checkpoints: train the demo model, then per checkpoint: activations and task metrics.


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


rule extract:
    input:
        checkpoint_inputs,
        words=STIMULUS,
    output:
        f"{R}/activations/{{model}}/seed{{seed}}/step{{step}}.h5",
    log:
        f"{R}/logs/extract/{{model}}_seed{{seed}}_step{{step}}.log",
    params:
        checkpoint=checkpoint_options,
        options=cli_options(config["extract"]),
        stimulus_option=STIMULUS_OPTION,
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        ENV
    shell:
        "OMP_NUM_THREADS={threads} brainphase extract {params.checkpoint} {params.options}"
        " {params.stimulus_option} {input.words} --out {output} > {log} 2>&1"


rule tasks:
    input:
        checkpoint_inputs,
        text=lambda wildcards: tasks_text(wildcards.model) or [],
    output:
        f"{R}/tasks/{{model}}/seed{{seed}}/step{{step}}.h5",
    log:
        f"{R}/logs/tasks/{{model}}_seed{{seed}}_step{{step}}.log",
    params:
        checkpoint=checkpoint_options,
        options=cli_options(config["tasks"], exclude=("text",)),
        device=config["extract"]["device"],
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        ENV
    shell:
        "OMP_NUM_THREADS={threads} brainphase tasks {params.checkpoint} {params.options} --device {params.device}"
        " --text {input.text} --out {output} > {log} 2>&1"
