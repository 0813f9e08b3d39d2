# FPGA half, stage 1: the original as the FPGA runs it (post-training quantized, optional short QAT).
# Everything in the FPGA half is a FINN+ estimate unless hardware.vivado builds bitstreams and a
# board host times them; its input functions live in common.smk.


rule hw_quantize_original:
    input:
        **get_split_files("train", "val", "test"),
        original=rules.train_original.output.checkpoint,
    output:
        checkpoint=f"{HW}/models/{cfg.ORIGINAL_NETWORK}.pt",
        logits=f"{HW}/logits/{cfg.ORIGINAL_NETWORK}.npz",
    log:
        f"{RESULTS}/logs/hw_quantize_original.log",
    benchmark:
        f"{RESULTS}/benchmarks/hw_quantize_original.tsv"
    conda:
        "../../envs/twindnn.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        stage=cfg.quantize_stage(config).to_params(),
        work_dir=f"{HW}/work/{cfg.ORIGINAL_NETWORK}",
    script:
        "../../scripts/hw_quantize_original.py"
