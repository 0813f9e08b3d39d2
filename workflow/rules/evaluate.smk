rule logits_original:
    input:
        checkpoint=rules.train_original.output.checkpoint,
        meta=rules.prepare_data.output.meta,
    output:
        logits=f"{RESULTS}/logits/original.npz",
    params:
        config=config,
    log:
        f"{RESULTS}/logs/logits_original.log",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../../scripts/logits.py"


rule logits_twin:
    input:
        checkpoint=rules.train_twin.output.checkpoint,
        meta=rules.prepare_data.output.meta,
    output:
        logits=f"{RESULTS}/logits/twin_{{twin}}.npz",
    params:
        config=config,
    log:
        f"{RESULTS}/logs/logits_twin_{{twin}}.log",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../../scripts/logits.py"
