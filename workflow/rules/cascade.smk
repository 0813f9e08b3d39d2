rule cascade:
    input:
        twin_logits=rules.logits_twin.output.logits,
        original_logits=rules.logits_original.output.logits,
    output:
        sweep=f"{RESULTS}/cascade/{{twin}}_sweep.csv",
        operating_points=f"{RESULTS}/cascade/{{twin}}_operating_points.csv",
    params:
        gates=config["cascade"]["gates"],
        targets=config["cascade"]["target_recovery"],
    log:
        f"{RESULTS}/logs/cascade_{{twin}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/cascade.py"
