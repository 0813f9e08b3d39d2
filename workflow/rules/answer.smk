# The run's answer (printed last) and every table of the run as an HTML page of the report.
rule answer:
    input:
        unpack(get_answer_inputs),
        data_meta=rules.prepare_data.output.meta,
    output:
        csv=f"{RESULTS}/tables/answer.csv",
        md=f"{RESULTS}/tables/answer.md",
        html=report(
            f"{RESULTS}/tables/answer.html",
            caption="../report/answer.rst",
            category="Answer",
        ),
    log:
        f"{RESULTS}/logs/answer.log",
    conda:
        "../../envs/twindnn.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        stage=cfg.answer_stage(config).to_params(),
    script:
        "../../scripts/answer.py"


rule report_pages:
    input:
        unpack(get_report_page_inputs),
    output:
        **get_report_page_outputs(),
    log:
        f"{RESULTS}/logs/report_pages.log",
    conda:
        "../../envs/twindnn.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../../scripts/report_pages.py"
