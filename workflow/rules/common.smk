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
    """The table the answer reads (the FPGA headline, or the software summary without the FPGA
    half), the same table of the reference run where it exists, and the run's other final outputs
    (not read: listed so that the answer is the last job and its lines end the console output).
    """
    name = "hw_headline.csv" if is_hardware() else "summary.csv"
    table = (
        rules.hw_tables.output.headline
        if is_hardware()
        else rules.report_tables.output.summary_csv
    )
    inputs = {"table": table, "others": list(rules.report_pages.output)}
    reference = cfg.reference_of(config)
    if reference:
        path = f"{config['results_dir']}/{reference}/tables/{name}"
        if os.path.exists(path):
            inputs["reference"] = path
    return inputs


# The run's tables shown as HTML pages in the report: name -> (caption, category, FPGA half only).
REPORT_PAGES = {
    "summary": ("summary", "Tables", False),
    "anchors": ("anchors", "Tables", False),
    "paper_table": ("paper_table", "FPGA", True),
    "hw_headline": ("hw_headline", "FPGA", True),
    "hw_fps": ("hw_fps", "FPGA", True),
    "hw_resources": ("hw_resources", "FPGA", True),
}


def report_page_names():
    return [
        n for n, (_, _, hw_only) in REPORT_PAGES.items() if is_hardware() or not hw_only
    ]


def report_page_tables():
    """name -> (CSV, the Markdown beside it or None); resolved when the DAG is built, after every
    rule file is read."""
    tables = {
        "summary": (
            rules.report_tables.output.summary_csv,
            rules.report_tables.output.summary_md,
        ),
        "anchors": (rules.compare_anchors.output.csv, rules.compare_anchors.output.md),
    }
    if is_hardware():
        tables |= {
            "paper_table": (
                rules.hw_tables.output.paper_csv,
                rules.hw_tables.output.paper_md,
            ),
            "hw_headline": (rules.hw_tables.output.headline, None),
            "hw_fps": (rules.hw_tables.output.fps, None),
            "hw_resources": (rules.hw_tables.output.resources, None),
        }
    return tables


def get_report_page_inputs(wildcards):
    inputs = {}
    for name, (csv, md) in report_page_tables().items():
        inputs[name] = csv
        if md is not None:
            inputs[f"{name}_md"] = md
    return inputs


def get_report_page_outputs():
    return {
        name: report(
            f"{RESULTS}/report_pages/{name}.html",
            caption=f"../report/{caption}.rst",
            category=category,
        )
        for name, (caption, category, _) in REPORT_PAGES.items()
        if name in report_page_names()
    }


def get_anchor_inputs(wildcards):
    """The FPGA headline table, where the run builds the hardware half."""
    return {"fpga_headline": rules.hw_tables.output.headline} if is_hardware() else {}


# Each rule's params are exactly its stage's config object (twindnn.config), as canonical plain data:
# editing another section, or reordering keys, leaves a job's outputs up to date.


def get_twin_stage(wildcards):
    return cfg.train_twin_stage(config, wildcards.twin).to_params()


def get_twin_files(pattern):
    """One file per configured twin, in sorted order: the order of the twins of the steps' stage
    objects (twindnn.config sorts their keys), which pair each file with its twin by position.
    """
    return expand(pattern, twin=sorted(TWINS))


def get_split_files(*splits):
    """The cached arrays of the named splits, as named inputs ``<split>_images`` / ``<split>_labels``
    (with ``meta``): every file of the cache that a step reads is declared."""
    files = {"meta": rules.prepare_data.output.meta}
    for split in splits:
        for kind in ("images", "labels"):
            files[f"{split}_{kind}"] = getattr(
                rules.prepare_data.output, f"{split}_{kind}"
            )
    return files


def get_train_threads():
    """Cores of a training job (its torch threads): compute.threads, else data-loader workers + 1 (at least 2)."""
    compute = config["compute"]
    return compute["threads"] or max(2, compute["num_workers"] + 1)


def get_train_resources():
    """Scheduler resources of a training job, from the compute section."""
    compute = config["compute"]
    return {
        "gpu": compute["gpus"],
        "mem_mb": compute["mem_mb"],
        "runtime": compute["train_runtime_min"],
    }


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
    return expand(
        rules.train_twin.output.checkpoint, twin=cfg.network_twin(wildcards.network)
    )[0]


def get_pair_searches(wildcards):
    """The searched designs and foldings of twin {twin} and of the original on {board}."""
    files = {}
    for role in ("twin", "original"):
        network = cfg.build_network_of(role, wildcards.twin)
        for kind in ("designs", "foldings"):
            pattern = getattr(rules.hw_search.output, kind)
            files[f"{role}_{kind}"] = expand(
                pattern, board=wildcards.board, network=network
            )[0]
    return files


def get_hw_build_inputs(wildcards):
    """The prepared graph of the network a build of {role} builds, and that role's folding."""
    network = cfg.build_network_of(wildcards.role, wildcards.twin)
    folding = getattr(rules.hw_colocate.output, f"folding_{wildcards.role}")
    return {
        "dataflow": expand(rules.hw_prepare.output.dataflow, network=network)[0],
        "folding": expand(folding, board=wildcards.board, twin=wildcards.twin)[0],
        "design_points": expand(
            rules.hw_colocate.output.design_points,
            board=wildcards.board,
            twin=wildcards.twin,
        )[0],
    }


def get_pair_dataflows(wildcards):
    """The prepared graphs of twin {twin} and of the original, for their joint build."""
    return {
        f"{role}_dataflow": expand(
            rules.hw_prepare.output.dataflow,
            network=cfg.build_network_of(role, wildcards.twin),
        )[0]
        for role in ("twin", "original")
    }


def get_hw_build_runtime():
    """Minutes a build asks for: a bitstream takes hours, an estimate seconds."""
    return 600 if config["hardware"]["vivado"] else 30


def get_hw_board_reports(wildcards=None):
    """Board timing reports, only for boards with a host in hardware.board_hosts."""
    boards = [b for b in HW_BOARDS if b in HW_HOSTS]
    reports = expand(
        rules.hw_board_timing.output.report,
        board=boards,
        twin=HW_TWINS,
        role=cfg.BUILD_ROLES,
    )
    return reports + expand(
        rules.hw_board_pair.output.report, board=boards, twin=HW_TWINS
    )
