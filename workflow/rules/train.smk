rule train_original:
    input:
        **get_split_files("train", "val"),
    output:
        checkpoint=f"{RESULTS}/models/original.pt",
        metrics=report(
            f"{RESULTS}/models/original_metrics.csv",
            caption="../report/training_metrics.rst",
            category="Training",
            labels={"network": "original"},
        ),
    log:
        f"{RESULTS}/logs/train_original.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_original.tsv"
    conda:
        "../../envs/twindnn.yaml"
    threads: get_train_threads()
    resources:
        **get_train_resources(),
    params:
        stage=cfg.train_original_stage(config).to_params(),
        work_dir=f"{RESULTS}/work/original",
    script:
        "../../scripts/train.py"


rule train_twin:
    input:
        **get_split_files("train", "val"),
        original=rules.train_original.output.checkpoint,
    output:
        checkpoint=f"{RESULTS}/models/twin_{{twin}}.pt",
        metrics=report(
            f"{RESULTS}/models/twin_{{twin}}_metrics.csv",
            caption="../report/training_metrics.rst",
            category="Training",
            labels={"network": "twin {twin}"},
        ),
    log:
        f"{RESULTS}/logs/train_twin_{{twin}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_twin_{{twin}}.tsv"
    conda:
        "../../envs/twindnn.yaml"
    threads: get_train_threads()
    resources:
        **get_train_resources(),
    params:
        stage=get_twin_stage,
        work_dir=lambda wc: f"{RESULTS}/work/twin_{wc.twin}",
    script:
        "../../scripts/train.py"
