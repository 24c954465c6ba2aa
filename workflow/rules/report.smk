CELLS = dict(method=GRID["methods"], concept=GRID["concepts"], attack=GRID["attacks"])


rule report:
    input:
        rules.evaluate.output[0],
        rules.base_model.output.metrics,
        rules.judge.output.metrics,
        rules.clip.output.metrics,
        expand("metrics/cells/{method}/{concept}/{attack}.json", **CELLS),
        expand("metrics/quality/{method}/{concept}.json", method=GRID["methods"], concept=GRID["concepts"]),
        rules.base_model.output.plots,
        expand("plots/erase/{method}/{concept}.json", method=GRID["methods"], concept=GRID["concepts"]),
        rules.generate.output[0],
        expand("data/attacks/{method}/{concept}/{attack}", **CELLS),
        rules.judge.output.model,
        "ablations",
        code=code("src/eraselab/report"),
    output:
        directory("reports"),
    params:
        section("grid", "report"),
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "eraselab report --metrics metrics --plots plots --images data/generated/base --cells metrics/cells --attacks data/attacks --judge models/judge --ablations ablations --timings logs/stages --out reports"
