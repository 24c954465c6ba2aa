# The same graph as dvc.yaml, from the same params.yaml, calling the same `eraselab` commands.
# `snakemake --cores 8 reports/` or `snakemake --cores 8` (rule all). Logic lives in src/eraselab/.
configfile: "params.yaml"


include: "workflow/rules/common.smk"


rule all:
    default_target: True
    input:
        "reports",


include: "workflow/rules/world.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/grid.smk"
include: "workflow/rules/report.smk"
