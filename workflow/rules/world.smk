rule world:
    input:
        code=code("src/eraselab/world"),
    output:
        directory("data/world"),
    params:
        section("world"),
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "eraselab world --out data/world"


rule prompts:
    input:
        code=code("src/eraselab/prompts", "src/eraselab/world/vocabulary.py"),
    output:
        directory("data/prompts"),
    params:
        section("world", "prompts"),
    threads: 1
    resources:
        mem_mb=500,
    shell:
        "eraselab prompts --out data/prompts"
