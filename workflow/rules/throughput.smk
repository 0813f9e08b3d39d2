rule throughput:
    input:
        original=rules.train_original.output.checkpoint,
        twin=rules.train_twin.output.checkpoint,
        images=rules.prepare_data.output.test_images,
    output:
        throughput=f"{RESULTS}/throughput/{{twin}}.csv",
    log:
        f"{RESULTS}/logs/throughput_{{twin}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/throughput_{{twin}}.tsv"
    conda:
        "../../envs/twindnn.yaml"
    # Timings want the machine to themselves; throughput.threads says how many cores that is.
    threads: config["throughput"]["threads"]
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        stage=cfg.throughput_stage(config).to_params(),
    script:
        "../../scripts/throughput.py"
