rule generate:
    input:
        model=rules.base_model.output.model,
        prompts=rules.prompts.output[0],
        code=code("src/eraselab/generate.py", "src/eraselab/models/loading.py"),
    output:
        directory("data/generated/base"),
    params:
        section("model", "generate"),
    threads: config["generate"]["threads"]
    resources:
        mem_mb=3000,
        gpu=1 if config["model"]["device"] == "cuda" else 0,
    shell:
        "eraselab generate --model models/base --prompts data/prompts/heldout.jsonl --out data/generated/base"


rule evaluate:
    input:
        images=rules.generate.output[0],
        judge=rules.judge.output.model,
        clip=rules.clip.output.model,
        code=code("src/eraselab/evaluation"),
    output:
        "metrics/base_model.json",
    params:
        section("generate.threads"),
    threads: config["generate"]["threads"]
    resources:
        mem_mb=2000,
    shell:
        "eraselab evaluate --images data/generated/base --judge models/judge --clip models/clip --out metrics/base_model.json"
