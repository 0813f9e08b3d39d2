rule cascade:
    input:
        twin_logits=rules.logits_twin.output.logits,
        original_logits=rules.logits_original.output.logits,
    output:
        sweep=f"{RESULTS}/cascade/{{twin}}_sweep.csv",
        operating_points=f"{RESULTS}/cascade/{{twin}}_operating_points.csv",
    log:
        f"{RESULTS}/logs/cascade_{{twin}}.log",
    conda:
        "../../envs/twindnn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        stage=cfg.cascade_stage(config).to_params(),
    script:
        "../../scripts/cascade.py"
