# FPGA half, stage 4: FINN+ builds of the design point on each {board}: each {role} of twin
# {twin}'s pair search (the twin and the original in the pair, the original alone) on its own,
# and the pair as one multi-DNN design. Estimates; with hardware.vivado on to bitstreams.


rule hw_build:
    input:
        unpack(get_hw_build_inputs),
    output:
        estimates=f"{HW}/builds/{{board}}__{{twin}}__{{role}}.json",
    log:
        f"{RESULTS}/logs/hw_build_{{board}}__{{twin}}__{{role}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/hw_build_{{board}}__{{twin}}__{{role}}.tsv"
    conda:
        "../../envs/twindnn.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=get_hw_build_runtime(),
    params:
        stage=lambda wc: cfg.build_stage(config, wc.board, wc.twin, wc.role).to_params(),
        build_dir=lambda wc: f"{HW}/builds/{wc.board}__{wc.twin}__{wc.role}",
    script:
        "../../scripts/hw_build.py"


rule hw_build_pair:
    input:
        unpack(get_pair_dataflows),
        folding_twin=rules.hw_colocate.output.folding_twin,
        folding_original=rules.hw_colocate.output.folding_original,
        design_points=rules.hw_colocate.output.design_points,
    output:
        estimates=f"{HW}/builds/{{board}}__{{twin}}__pair.json",
    log:
        f"{RESULTS}/logs/hw_build_pair_{{board}}__{{twin}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/hw_build_pair_{{board}}__{{twin}}.tsv"
    conda:
        "../../envs/twindnn.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=get_hw_build_runtime(),
    params:
        stage=lambda wc: cfg.build_pair_stage(config, wc.board).to_params(),
        build_dir=lambda wc: f"{HW}/builds/{wc.board}__{wc.twin}__pair",
    script:
        "../../scripts/hw_build_pair.py"
