rule logits_original:
    input:
        **get_split_files("val", "test"),
        checkpoint=rules.train_original.output.checkpoint,
    output:
        logits=f"{RESULTS}/logits/original.npz",
    log:
        f"{RESULTS}/logs/logits_original.log",
    benchmark:
        f"{RESULTS}/benchmarks/logits_original.tsv"
    conda:
        "../../envs/twindnn.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        stage=cfg.logits_stage(config).to_params(),
    script:
        "../../scripts/logits.py"


rule logits_twin:
    input:
        **get_split_files("val", "test"),
        checkpoint=rules.train_twin.output.checkpoint,
    output:
        logits=f"{RESULTS}/logits/twin_{{twin}}.npz",
    log:
        f"{RESULTS}/logs/logits_twin_{{twin}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/logits_twin_{{twin}}.tsv"
    conda:
        "../../envs/twindnn.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        stage=cfg.logits_stage(config).to_params(),
    script:
        "../../scripts/logits.py"
