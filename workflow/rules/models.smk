rule base_model:
    input:
        world=rules.world.output[0],
        code=code("src/eraselab/models/base_model.py", "src/eraselab/models/components.py",
                  "src/eraselab/models/tokenizer.py", "src/eraselab/world/vocabulary.py"),
    output:
        model=directory("models/base"),
        plots=directory("plots/base_model"),
        metrics="metrics/base_model_train.json",
    params:
        section("world", "base_model"),
    threads: config["base_model"]["threads"]
    resources:
        mem_mb=6000,
        gpu=0,
    shell:
        "eraselab base-model --world data/world --out models/base --metrics metrics/base_model_train.json --plots plots/base_model"


rule judge:
    input:
        world=rules.world.output[0],
        code=code("src/eraselab/models/judge.py"),
    output:
        model=directory("models/judge"),
        metrics="metrics/judge.json",
    params:
        section("world", "judge"),
    threads: config["judge"]["threads"]
    resources:
        mem_mb=3000,
        gpu=0,
    shell:
        "eraselab judge --world data/world --out models/judge --metrics metrics/judge.json"


rule clip:
    input:
        world=rules.world.output[0],
        code=code("src/eraselab/models/clip.py", "src/eraselab/world/vocabulary.py"),
    output:
        model=directory("models/clip"),
        metrics="metrics/clip.json",
    params:
        section("world", "clip"),
    threads: config["clip"]["threads"]
    resources:
        mem_mb=3000,
        gpu=0,
    shell:
        "eraselab clip --world data/world --out models/clip --metrics metrics/clip.json"
