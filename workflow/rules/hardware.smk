# FPGA half: 8-bit original, QONNX export, FINN+ builds, co-location search, system model, board timing.
# Everything is a FINN+ estimate unless hardware.vivado builds bitstreams and a board host times them.
# Its constants and input functions live in common.smk.


rule hw_quantize_original:
    input:
        original=rules.train_original.output.checkpoint,
        meta=rules.prepare_data.output.meta,
        images=rules.prepare_data.output.train_images,
    output:
        checkpoint=f"{HW}/models/original_q.pt",
        logits=f"{HW}/logits/original_q.npz",
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
        work_dir=f"{HW}/work/original_q",
    script:
        "../../scripts/hw_quantize_original.py"


rule hw_export:
    input:
        checkpoint=get_hw_checkpoint,
        meta=rules.prepare_data.output.meta,
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
        onnx=rules.hw_export.output.onnx,
        meta=rules.prepare_data.output.meta,
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


rule hw_search:
    input:
        dataflow=rules.hw_prepare.output.dataflow,
    output:
        designs=f"{HW}/search/{{board}}__{{network}}_designs.csv",
        foldings=f"{HW}/search/{{board}}__{{network}}_foldings.json",
    log:
        f"{RESULTS}/logs/hw_search_{{board}}__{{network}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/hw_search_{{board}}__{{network}}.tsv"
    conda:
        "../../envs/twindnn.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        stage=lambda wc: cfg.search_stage(config, wc.board, wc.network).to_params(),
    script:
        "../../scripts/hw_search.py"


rule hw_colocate:
    input:
        twin_designs=lambda wc: expand(
            rules.hw_search.output.designs, board=wc.board, network=f"twin_{wc.twin}"
        )[0],
        twin_foldings=lambda wc: expand(
            rules.hw_search.output.foldings, board=wc.board, network=f"twin_{wc.twin}"
        )[0],
        original_designs=lambda wc: expand(
            rules.hw_search.output.designs, board=wc.board, network="original_q"
        )[0],
        original_foldings=lambda wc: expand(
            rules.hw_search.output.foldings, board=wc.board, network="original_q"
        )[0],
        operating_points=rules.cascade.output.operating_points,
        twin_logits=rules.logits_twin.output.logits,
        original_logits=rules.hw_quantize_original.output.logits,
    output:
        system=f"{HW}/colocate/{{board}}__{{twin}}_system.csv",
        folding_twin=f"{HW}/colocate/{{board}}__{{twin}}_folding_twin.json",
        folding_original=f"{HW}/colocate/{{board}}__{{twin}}_folding_original.json",
        folding_original_alone=f"{HW}/colocate/{{board}}__{{twin}}_folding_original_alone.json",
        design_points=f"{HW}/colocate/{{board}}__{{twin}}_design_points.json",
    log:
        f"{RESULTS}/logs/hw_colocate_{{board}}__{{twin}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/hw_colocate_{{board}}__{{twin}}.tsv"
    conda:
        "../../envs/twindnn.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        stage=lambda wc: cfg.colocate_stage(config, wc.board).to_params(),
    script:
        "../../scripts/hw_colocate.py"


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
        # a bitstream build takes hours; an estimate seconds
        runtime=lambda wc: 600 if HW_CONFIG["vivado"] else 30,
    params:
        stage=lambda wc: cfg.build_stage(config, wc.board).to_params(),
        build_dir=lambda wc: f"{HW}/builds/{wc.board}__{wc.twin}__{wc.role}",
    script:
        "../../scripts/hw_build.py"


rule hw_build_pair:
    input:
        twin_dataflow=lambda wc: expand(
            rules.hw_prepare.output.dataflow, network=f"twin_{wc.twin}"
        )[0],
        original_dataflow=expand(
            rules.hw_prepare.output.dataflow, network="original_q"
        )[0],
        folding_twin=rules.hw_colocate.output.folding_twin,
        folding_original=rules.hw_colocate.output.folding_original,
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
        runtime=lambda wc: 600 if HW_CONFIG["vivado"] else 30,
    params:
        stage=lambda wc: cfg.build_stage(config, wc.board).to_params(),
        build_dir=lambda wc: f"{HW}/builds/{wc.board}__{wc.twin}__pair",
    script:
        "../../scripts/hw_build_pair.py"


rule hw_board_timing:
    input:
        estimates=rules.hw_build.output.estimates,
        meta=rules.prepare_data.output.meta,
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
        pair=rules.hw_build_pair.output.estimates,
        design_points=rules.hw_colocate.output.design_points,
        meta=rules.prepare_data.output.meta,
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


rule hw_tables:
    input:
        builds=expand(
            rules.hw_build.output.estimates,
            board=HW_BOARDS,
            twin=HW_TWINS,
            role=HW_ROLES,
        ),
        pairs=expand(
            rules.hw_build_pair.output.estimates, board=HW_BOARDS, twin=HW_TWINS
        ),
        systems=expand(rules.hw_colocate.output.system, board=HW_BOARDS, twin=HW_TWINS),
        design_points=expand(
            rules.hw_colocate.output.design_points, board=HW_BOARDS, twin=HW_TWINS
        ),
        board_reports=get_hw_board_reports(),
        checks=expand(rules.hw_prepare.output.check, network=HW_NETWORKS),
    output:
        resources=report(
            f"{RESULTS}/tables/hw_resources.csv",
            caption="../report/hw_resources.rst",
            category="FPGA",
        ),
        fps=report(
            f"{RESULTS}/tables/hw_fps.csv",
            caption="../report/hw_fps.rst",
            category="FPGA",
        ),
        headline=report(
            f"{RESULTS}/tables/hw_headline.csv",
            caption="../report/hw_headline.rst",
            category="FPGA",
        ),
        figure=report(
            f"{RESULTS}/figures/hw_accuracy_vs_throughput.png",
            caption="../report/hw_accuracy_vs_throughput.rst",
            category="FPGA",
        ),
        paper_csv=f"{RESULTS}/tables/paper_table.csv",
        paper_md=report(
            f"{RESULTS}/tables/paper_table.md",
            caption="../report/paper_table.rst",
            category="FPGA",
        ),
        paper_figure=report(
            f"{RESULTS}/figures/paper_speedup_vs_recovery.png",
            caption="../report/paper_table.rst",
            category="FPGA",
        ),
    log:
        f"{RESULTS}/logs/hw_tables.log",
    conda:
        "../../envs/twindnn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        stage=cfg.tables_stage(config).to_params(),
    script:
        "../../scripts/hw_tables.py"
