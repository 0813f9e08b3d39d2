# FPGA half, stage 5: timing on the boards that have a host in hardware.board_hosts (needs
# hardware.vivado): each build's accelerator, and the pair with the paper's host loop.


rule hw_board_timing:
    input:
        **get_split_files("test"),
        estimates=rules.hw_build.output.estimates,
    output:
        report=f"{HW}/board/{{board}}__{{twin}}__{{role}}.json",
    log:
        f"{RESULTS}/logs/hw_board_timing_{{board}}__{{twin}}__{{role}}.log",
    conda:
        "../../envs/twindnn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        stage=lambda wc: cfg.board_timing_stage(config, wc.board).to_params(),
    script:
        "../../scripts/hw_board_timing.py"


rule hw_board_pair:
    input:
        **get_split_files("test"),
        pair=rules.hw_build_pair.output.estimates,
        design_points=rules.hw_colocate.output.design_points,
    output:
        report=f"{HW}/board/{{board}}__{{twin}}__pair.json",
    log:
        f"{RESULTS}/logs/hw_board_pair_{{board}}__{{twin}}.log",
    conda:
        "../../envs/twindnn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        stage=lambda wc: cfg.board_timing_stage(config, wc.board).to_params(),
    script:
        "../../scripts/hw_board_pair.py"
