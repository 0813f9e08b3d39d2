# FPGA half, stage 2: the FINN+ front end of each {network} (the quantized original, each FPGA
# twin): QONNX export checked against PyTorch, then streamlining to a dataflow graph checked
# against QONNX. Board-independent: once per network.


rule hw_export:
    input:
        **get_split_files("test"),
        checkpoint=get_hw_checkpoint,
    output:
        onnx=f"{HW}/onnx/{{network}}.onnx",
        check=f"{HW}/onnx/{{network}}_export_check.csv",
    log:
        f"{RESULTS}/logs/hw_export_{{network}}.log",
    conda:
        "../../envs/twindnn.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        stage=cfg.export_stage(config).to_params(),
    script:
        "../../scripts/hw_export.py"


rule hw_prepare:
    input:
        **get_split_files("test"),
        onnx=rules.hw_export.output.onnx,
    output:
        dataflow=f"{HW}/finn/{{network}}/dataflow.onnx",
        check=f"{HW}/finn/{{network}}/streamline_check.csv",
    log:
        f"{RESULTS}/logs/hw_prepare_{{network}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/hw_prepare_{{network}}.tsv"
    conda:
        "../../envs/twindnn.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        stage=cfg.prepare_stage(config).to_params(),
    script:
        "../../scripts/hw_prepare.py"
