# FPGA half, stage 6: resource, FPS and headline tables, the paper's table and the FPGA figures.


rule hw_tables:
    input:
        builds=expand(
            rules.hw_build.output.estimates,
            board=HW_BOARDS,
            twin=HW_TWINS,
            role=cfg.BUILD_ROLES,
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
        resources=f"{RESULTS}/tables/hw_resources.csv",
        fps=f"{RESULTS}/tables/hw_fps.csv",
        headline=f"{RESULTS}/tables/hw_headline.csv",
        figure=report(
            f"{RESULTS}/figures/hw_accuracy_vs_throughput.png",
            caption="../report/hw_accuracy_vs_throughput.rst",
            category="FPGA",
        ),
        paper_csv=f"{RESULTS}/tables/paper_table.csv",
        paper_md=f"{RESULTS}/tables/paper_table.md",
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
