# The method x concept x attack grid; one job per cell, as dvc.yaml's matrix stages.
# Snakemake does not track params computed per job, so erase/attack track their whole params section:
# changing one method's params may rerun other methods' cells here (never fewer than needed); DVC is exact.


rule erase:
    input:
        model=rules.base_model.output.model,
        prompts="data/prompts/concepts/{concept}",
        clip=rules.clip.output.model,
        code=code("src/eraselab/erasure", "src/eraselab/generate.py", "src/eraselab/models/text_encoding.py"),
    output:
        directory("models/erased/{method}/{concept}"),
        "plots/erase/{method}/{concept}.json",
    params:
        section("model", "grid.threads", "erase"),
    threads: config["grid"]["threads"]
    resources:
        mem_mb=4000,
        gpu=1 if config["model"]["device"] == "cuda" else 0,
    shell:
        "eraselab erase --method {wildcards.method} --prompts data/prompts/concepts/{wildcards.concept} --model models/base --clip models/clip --out models/erased/{wildcards.method}/{wildcards.concept} --plots plots/erase/{wildcards.method}/{wildcards.concept}.json"


rule defended_images:
    input:
        model=rules.base_model.output.model,
        artifact="models/erased/{method}/{concept}",
        prompts="data/prompts/concepts/{concept}",
        code=code("src/eraselab/generate.py", "src/eraselab/erasure", "src/eraselab/models/text_encoding.py"),
    output:
        directory("data/generated/{method}/{concept}"),
    params:
        section("model", "generate", "grid.threads"),
    threads: config["grid"]["threads"]
    resources:
        mem_mb=3000,
        gpu=1 if config["model"]["device"] == "cuda" else 0,
    shell:
        "eraselab defended-images --artifact models/erased/{wildcards.method}/{wildcards.concept} --prompts data/prompts/concepts/{wildcards.concept} --model models/base --out data/generated/{wildcards.method}/{wildcards.concept}"


rule attack:
    input:
        model=rules.base_model.output.model,
        artifact="models/erased/{method}/{concept}",
        prompts="data/prompts/concepts/{concept}",
        judge=rules.judge.output.model,
        clip=rules.clip.output.model,
        code=code("src/eraselab/attacks", "src/eraselab/erasure", "src/eraselab/generate.py",
                  "src/eraselab/models/text_encoding.py"),
    output:
        directory("data/attacks/{method}/{concept}/{attack}"),
    params:
        section("model", "generate", "grid.threads", "attack"),
    threads: config["grid"]["threads"]
    resources:
        mem_mb=4000,
        gpu=1 if config["model"]["device"] == "cuda" else 0,
    shell:
        "eraselab attack --attack {wildcards.attack} --artifact models/erased/{wildcards.method}/{wildcards.concept} --prompts data/prompts/concepts/{wildcards.concept} --model models/base --judge models/judge --clip models/clip --out data/attacks/{wildcards.method}/{wildcards.concept}/{wildcards.attack}"


rule evaluate_cell:
    input:
        prompts="data/prompts/concepts/{concept}",
        samples="data/generated/{method}/{concept}",
        attack="data/attacks/{method}/{concept}/{attack}",
        judge=rules.judge.output.model,
        clip=rules.clip.output.model,
        code=code("src/eraselab/evaluation"),
    output:
        "metrics/cells/{method}/{concept}/{attack}.json",
    params:
        section("grid.threads", "evaluation"),
    threads: config["grid"]["threads"]
    resources:
        mem_mb=2000,
    shell:
        "eraselab evaluate-cell --prompts data/prompts/concepts/{wildcards.concept} --samples data/generated/{wildcards.method}/{wildcards.concept} --attack data/attacks/{wildcards.method}/{wildcards.concept}/{wildcards.attack} --judge models/judge --clip models/clip --out metrics/cells/{wildcards.method}/{wildcards.concept}/{wildcards.attack}.json"


rule quality:
    input:
        samples="data/generated/{method}/{concept}",
        reference=f"data/generated/{config['evaluation']['fid_reference']}/{{concept}}",
        clip=rules.clip.output.model,
        code=code("src/eraselab/evaluation"),
    output:
        "metrics/quality/{method}/{concept}.json",
    params:
        section("grid.threads", "evaluation.fid", "evaluation.fid_reference"),
    threads: config["grid"]["threads"]
    resources:
        mem_mb=2000,
    shell:
        "eraselab quality --samples data/generated/{wildcards.method}/{wildcards.concept} --reference data/generated/%s/{wildcards.concept} --clip models/clip --out metrics/quality/{wildcards.method}/{wildcards.concept}.json" % config["evaluation"]["fid_reference"]
