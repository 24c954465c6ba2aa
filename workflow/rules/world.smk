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
        "data/prompts/heldout.jsonl",
    params:
        section("world", "prompts.seed", "prompts.per_combination"),
    threads: 1
    resources:
        mem_mb=500,
    shell:
        "eraselab prompts --out data/prompts/heldout.jsonl"


rule concept_prompts:
    input:
        code=code("src/eraselab/prompts", "src/eraselab/world/vocabulary.py"),
    output:
        directory("data/prompts/concepts/{concept}"),
    params:
        section("world", "prompts.seed", "prompts.per_concept", "prompts.attack_seeds"),
    threads: 1
    resources:
        mem_mb=500,
    shell:
        "eraselab concept-prompts --concept {wildcards.concept} --out data/prompts/concepts/{wildcards.concept}"
