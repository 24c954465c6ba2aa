rule report:
    input:
        rules.evaluate.output[0],
        rules.base_model.output.metrics,
        rules.judge.output.metrics,
        rules.clip.output.metrics,
        rules.base_model.output.plots,
        rules.generate.output[0],
        rules.judge.output.model,
        code=code("src/eraselab/report"),
    output:
        directory("reports"),
    params:
        section("report"),
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "eraselab report --metrics metrics --plots plots --images data/generated/base --judge models/judge --out reports"
