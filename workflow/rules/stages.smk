# One rule per stage kind, built from the stage declarations (eraselab.graph.SnakemakeRules): params.yaml
# is validated here, before any rule runs; each job's inputs are its data plus the source files its code
# imports, and its params are exactly the keys it reads.
from eraselab.graph import SnakemakeRules

RULES = SnakemakeRules(config)


onstart:
    RULES.validate()  # components' params and external inputs, before any job (or output removal)

for _kind in RULES.kinds():

    rule:
        name:
            _kind
        input:
            RULES.inputs(_kind),
        output:
            [directory(path) if folder else path for path, folder in RULES.outputs(_kind)],
        params:
            RULES.param_values(_kind),
            cmd=RULES.command(_kind),
        wildcard_constraints:
            **RULES.constraints(_kind),
        threads: RULES.threads(_kind)
        resources:
            **RULES.resources(_kind),
        shell:
            "{params.cmd}"  # the job's command, bound per job (a loop variable here would be read at run time)
