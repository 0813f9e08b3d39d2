rule report_tables:
    input:
        operating_points=get_twin_files(rules.cascade.output.operating_points),
        sweeps=get_twin_files(rules.cascade.output.sweep),
        throughput=get_twin_files(rules.throughput.output.throughput),
        twin_logits=get_twin_files(rules.logits_twin.output.logits),
        data_meta=rules.prepare_data.output.meta,
    output:
        summary_csv=f"{RESULTS}/tables/summary.csv",
        summary_md=f"{RESULTS}/tables/summary.md",
        summary_tex=f"{RESULTS}/tables/summary.tex",
        fig_accuracy_forwarded=report(
            f"{RESULTS}/figures/accuracy_vs_forwarded.png",
            caption="../report/accuracy_vs_forwarded.rst",
            category="Figures",
        ),
        fig_confidence=report(
            f"{RESULTS}/figures/confidence_histograms.png",
            caption="../report/confidence_histograms.rst",
            category="Figures",
        ),
        fig_accuracy_throughput=report(
            f"{RESULTS}/figures/accuracy_vs_throughput.png",
            caption="../report/accuracy_vs_throughput.rst",
            category="Figures",
        ),
    log:
        f"{RESULTS}/logs/report_tables.log",
    conda:
        "../../envs/twindnn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        stage=cfg.report_stage(config).to_params(),
    script:
        "../../scripts/report.py"


rule compare_anchors:
    input:
        unpack(get_anchor_inputs),
        summary=rules.report_tables.output.summary_csv,
        data_meta=rules.prepare_data.output.meta,
        anchors=f"{workflow.basedir}/workflow/anchors.yaml",
    output:
        csv=f"{RESULTS}/tables/anchors.csv",
        md=f"{RESULTS}/tables/anchors.md",
        tex=f"{RESULTS}/tables/anchors.tex",
    log:
        f"{RESULTS}/logs/compare_anchors.log",
    conda:
        "../../envs/twindnn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        stage=cfg.anchors_stage(config).to_params(),
    script:
        "../../scripts/anchors.py"
