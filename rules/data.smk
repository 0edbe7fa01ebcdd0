# Corpus, timed stimulus and fMRI responses.
import json


rule corpus:
    output:
        train=f"{R}/corpus/train.txt",
        valid=f"{R}/corpus/valid.txt",
        words=f"{R}/corpus/stimulus_words.tsv",
        meta=f"{R}/corpus/corpus.json",
    log:
        f"{R}/logs/corpus.log",
    benchmark:
        f"{R}/benchmarks/corpus.tsv"
    params:
        options=cli_options(config["corpus"], exclude=("stimulus",)),
        out_dir=f"{R}/corpus",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        ENV
    shell:
        "brainphase corpus {params.options} --out-dir {params.out_dir} > {log} 2>&1"


rule simulate:
    input:
        words=STIMULUS,
        train=f"{R}/corpus/train.txt",
    output:
        directory(f"{R}/fmri/simulated"),
    log:
        f"{R}/logs/simulate.log",
    benchmark:
        f"{R}/benchmarks/simulate.tsv"
    params:
        options=cli_options(config["fmri"]["simulate"]),
        task=config["fmri"]["task"],
        corpus_dir=f"{R}/corpus",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ENV
    shell:
        "OMP_NUM_THREADS={threads} brainphase simulate {params.options} --task {params.task}"
        " --stimulus {input.words} --corpus-dir {params.corpus_dir} --out-dir {output} > {log} 2>&1"


def fmri_root(wildcards):
    return f"{R}/fmri/simulated" if SIMULATED else config["fmri"]["root"]


def fmri_options():
    """`brainphase load-fmri` options from the `fmri` section (schema defaults already filled in)."""
    fmri = config["fmri"]
    kind = "bids" if SIMULATED else fmri["kind"]
    options = {"kind": kind, "task": fmri["task"], "space": fmri["space"], "subjects": fmri.get("subjects"),
               "tr": fmri.get("tr")}
    if fmri.get("run_map"):  # one JSON object: run labels may hold any character (spaces, '=', quotes)
        options["run_map"] = [json.dumps(fmri["run_map"])]
    load = dict(fmri["load"])
    if SIMULATED:
        load.setdefault("atlas", f"{R}/fmri/simulated/atlas-simulated_dseg.nii.gz")
    return cli_options(options) + " " + cli_options(load)


def load_fmri_inputs(wildcards):
    """The fMRI root, plus the timed stimulus (run names and durations) unless sentence-level."""
    inputs = {"root": fmri_root(wildcards)}
    if not SENTENCES:
        inputs["words"] = STIMULUS
    return inputs


rule load_fmri:
    input:
        unpack(load_fmri_inputs),
    output:
        f"{R}/fmri/responses.h5",
    log:
        f"{R}/logs/load_fmri.log",
    benchmark:
        f"{R}/benchmarks/load_fmri.tsv"
    params:
        options=fmri_options(),
        stimulus=lambda wildcards, input: "" if SENTENCES else f"--stimulus {input.words}",
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        ENV
    shell:
        "OMP_NUM_THREADS={threads} brainphase load-fmri {params.options} --root {input.root}"
        " {params.stimulus} --out {output} > {log} 2>&1"

