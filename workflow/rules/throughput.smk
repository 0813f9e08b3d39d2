rule throughput:
    input:
        original=rules.train_original.output.checkpoint,
        twin=rules.train_twin.output.checkpoint,
        images=rules.prepare_data.output.test_images,
    output:
        throughput=f"{RESULTS}/throughput/{{twin}}.csv",
    params:
        settings=config["throughput"],
        threads=config["compute"].get("threads"),
    log:
        f"{RESULTS}/logs/throughput_{{twin}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/throughput_{{twin}}.tsv"
    # Timings need the whole machine: nothing else runs beside this job.
    threads: workflow.cores
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../../scripts/throughput.py"
