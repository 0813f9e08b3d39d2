rule prepare_data:
    output:
        train_images=f"{RESULTS}/data/train_images.npy",
        train_labels=f"{RESULTS}/data/train_labels.npy",
        val_images=f"{RESULTS}/data/val_images.npy",
        val_labels=f"{RESULTS}/data/val_labels.npy",
        test_images=f"{RESULTS}/data/test_images.npy",
        test_labels=f"{RESULTS}/data/test_labels.npy",
        meta=f"{RESULTS}/data/meta.json",
    log:
        f"{RESULTS}/logs/prepare_data.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare_data.tsv"
    conda:
        "../../envs/twindnn.yaml"
    threads: config["compute"]["data_workers"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        stage=cfg.data_stage(config).to_params(),
    script:
        "../../scripts/prepare_data.py"
