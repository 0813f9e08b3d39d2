# Shared helpers: config validation, wildcard constraints, input/param functions. No rules here.
import os
import re

from twindnn import config as cfg

# The schema (the only home of defaults; gate enums from twindnn.cascade's registry), then the
# checks across keys: both before any job runs.
cfg.validated(config, f"{workflow.basedir}/workflow/schemas/config.schema.yaml")

RESULTS = f"{config['results_dir']}/{config['run_name']}"
TWINS = list(config["twins"])


wildcard_constraints:
    twin="|".join(TWINS),


def is_hardware():
    """Whether the run builds the FPGA half (a hardware section that is not enabled: false)."""
    return bool(config["hardware"]["enabled"])


def get_final_output():
    """The tables and figures of the run: what `snakemake` builds by default."""
    outputs = list(rules.report_tables.output) + list(rules.compare_anchors.output)
    outputs += [rules.train_original.output.metrics]
    outputs += expand(rules.train_twin.output.metrics, twin=TWINS)
    if is_hardware():
        outputs += list(rules.hw_tables.output)
    outputs += list(rules.report_pages.output) + list(rules.answer.output)
    return outputs


def get_answer_inputs(wildcards):
    """The table the answer reads (FPGA headline, else software summary), the reference run's
    same table where it exists, and the report pages (not read: so the answer is the last job).
    """
    table = rules.report_tables.output.summary_csv
    if is_hardware():
        table = rules.hw_tables.output.headline
    name = os.path.basename(table)
    inputs = {"table": table, "others": list(rules.report_pages.output)}
    reference = cfg.reference_of(config)
    if reference:
        path = f"{config['results_dir']}/{reference}/tables/{name}"
        if os.path.exists(path):
            inputs["reference"] = path
    return inputs


# The run's tables shown as HTML pages in the report (caption workflow/report/<name>.rst):
# name -> (report category, rule, its CSV output, its Markdown output or None). "FPGA" pages exist
# only where the run builds the FPGA half.
REPORT_PAGES = {
    "summary": ("Tables", "report_tables", "summary_csv", "summary_md"),
    "anchors": ("Tables", "compare_anchors", "csv", "md"),
    "paper_table": ("FPGA", "hw_tables", "paper_csv", "paper_md"),
    "hw_headline": ("FPGA", "hw_tables", "headline", None),
    "hw_fps": ("FPGA", "hw_tables", "fps", None),
    "hw_resources": ("FPGA", "hw_tables", "resources", None),
}


def get_report_pages():
    """The pages of this run: name -> (category, rule, CSV output, Markdown output or None)."""
    return {n: p for n, p in REPORT_PAGES.items() if is_hardware() or p[0] != "FPGA"}


def get_report_page_inputs(wildcards):
    """Each page's CSV as input <name>, its Markdown as <name>_md (resolved after every rule file)."""
    inputs = {}
    for name, (_, rule, csv, md) in get_report_pages().items():
        output = getattr(rules, rule).output
        inputs[name] = getattr(output, csv)
        if md is not None:
            inputs[f"{name}_md"] = getattr(output, md)
    return inputs


def get_report_page_outputs():
    return {
        name: report(
            f"{RESULTS}/report_pages/{name}.html",
            caption=f"../report/{name}.rst",
            category=category,
        )
        for name, (category, *_) in get_report_pages().items()
    }


def get_anchor_inputs(wildcards):
    """The FPGA headline table, where the run builds the hardware half."""
    return {"fpga_headline": rules.hw_tables.output.headline} if is_hardware() else {}


# Each rule's params are exactly its stage's config object (twindnn.config), as canonical plain data:
# editing another section, or reordering keys, leaves a job's outputs up to date.


def get_twin_stage(wildcards):
    return cfg.train_twin_stage(config, wildcards.twin).to_params()


def get_twin_files(pattern):
    """One file per twin, sorted as the stage objects sort them: files pair by position."""
    return expand(pattern, twin=sorted(TWINS))


def get_split_files(*splits):
    """The cached arrays of the named splits, as named inputs ``<split>_images`` / ``<split>_labels``
    (with ``meta``): every file of the cache that a step reads is declared."""
    data = rules.prepare_data.output
    names = [f"{split}_{kind}" for split in splits for kind in ("images", "labels")]
    return {"meta": data.meta} | {name: getattr(data, name) for name in names}


def get_train_threads():
    """Cores of a training job (its torch threads): compute.threads, else data-loader workers + 1 (at least 2)."""
    compute = config["compute"]
    return compute["threads"] or max(2, compute["num_workers"] + 1)


def get_train_resources():
    """Scheduler resources of a training job, from the compute section."""
    c = config["compute"]
    return {"gpu": c["gpus"], "mem_mb": c["mem_mb"], "runtime": c["train_runtime_min"]}


# ---- FPGA half (workflow/rules/quantize.smk ... hw_tables.smk). One {network} wildcard names a
# network of the FPGA half (twindnn.config: the quantized original, twin_<twin>); a build is one
# {role} of twin {twin}'s pair search, resolved to its network and MAC resource in twindnn.config.

HW = f"{RESULTS}/hardware"
HW_BOARDS = list(config["hardware"]["boards"])
HW_TWINS = cfg.hw_twins(config)
HW_NETWORKS = cfg.hw_networks(config)
HW_HOSTS = {b: h for b, h in config["hardware"]["board_hosts"].items() if h}


wildcard_constraints:
    board="|".join(re.escape(b) for b in HW_BOARDS),
    network="|".join(HW_NETWORKS),
    role="|".join(cfg.BUILD_ROLES),


def get_hw_checkpoint(wildcards):
    """The checkpoint of FPGA network {network}: the quantized original, or the trained twin."""
    if cfg.network_role(wildcards.network) == "original":
        return rules.hw_quantize_original.output.checkpoint
    twin = cfg.network_twin(wildcards.network)
    return rules.train_twin.output.checkpoint.format(twin=twin)


def get_pair_searches(wildcards):
    """The searched designs and foldings of twin {twin} and of the original on {board}."""
    return {
        f"{role}_{kind}": getattr(rules.hw_search.output, kind).format(
            board=wildcards.board, network=cfg.build_network_of(role, wildcards.twin)
        )
        for role in ("twin", "original")
        for kind in ("designs", "foldings")
    }


def get_hw_build_inputs(wildcards):
    """The prepared graph of the network a build of {role} builds, and that role's folding."""
    network = cfg.build_network_of(wildcards.role, wildcards.twin)
    pair = {"board": wildcards.board, "twin": wildcards.twin}
    folding = getattr(rules.hw_colocate.output, f"folding_{wildcards.role}")
    return {
        "dataflow": rules.hw_prepare.output.dataflow.format(network=network),
        "folding": folding.format(**pair),
        "design_points": rules.hw_colocate.output.design_points.format(**pair),
    }


def get_pair_dataflows(wildcards):
    """The prepared graphs of twin {twin} and of the original, for their joint build."""
    dataflow = rules.hw_prepare.output.dataflow
    return {
        f"{role}_dataflow": dataflow.format(
            network=cfg.build_network_of(role, wildcards.twin)
        )
        for role in ("twin", "original")
    }


def get_hw_build_runtime():
    """Minutes a build asks for: a bitstream takes hours, an estimate seconds."""
    return 600 if config["hardware"]["vivado"] else 30


def get_hw_board_reports(wildcards=None):
    """Board timing reports, only for boards with a host in hardware.board_hosts."""
    pairs = {"board": [b for b in HW_BOARDS if b in HW_HOSTS], "twin": HW_TWINS}
    reports = expand(rules.hw_board_timing.output.report, role=cfg.BUILD_ROLES, **pairs)
    return reports + expand(rules.hw_board_pair.output.report, **pairs)
