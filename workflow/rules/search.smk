# FPGA half, stage 3: the design space of each {network} on each {board} (FINN+ estimates), then
# the pair search of each twin with the original, the system table (TwinDNN and its baselines per
# operating point and scheduler) and the design point's foldings.


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
        unpack(get_pair_searches),
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
