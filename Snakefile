# The same graph as dvc.yaml, from the same stage declarations (src/eraselab/stages/) and params.yaml.
# `snakemake --cores 8 reports/` or `snakemake --cores 8` (rule all). Logic lives in src/eraselab/.
configfile: "params.yaml"


include: "workflow/rules/stages.smk"


rule all:
    default_target: True
    input:
        RULES.final(),
