# brainphase: language-model training checkpoints versus fMRI, and the triple phase transitions.
# Run `snakemake --cores all` (embedded demo, config/config.yaml) or
# `snakemake --configfile my.yaml --cores all`. See README.md.

from snakemake.utils import min_version

min_version("9.0")

if not workflow.overwrite_configfiles:

    configfile: f"{workflow.basedir}/config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/encoding.smk"
include: "rules/trajectory.smk"
include: "rules/emergence.smk"


rule all:
    input:
        all_outputs(),
    default_target: True


onsuccess:
    print_summary()
