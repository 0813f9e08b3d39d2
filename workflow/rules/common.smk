# Shared helpers: config validation, wildcard constraints, input/param functions. No rules here.
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
    return outputs


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


# ---- FPGA half (workflow/rules/hardware.smk)

HW = f"{RESULTS}/hardware"
HW_CONFIG = config["hardware"]
HW_BOARDS = list(HW_CONFIG["boards"])
HW_TWINS = list(HW_CONFIG["twins"] or TWINS)
HW_NETWORKS = ["original_q"] + [f"twin_{t}" for t in HW_TWINS]
HW_ROLES = ["twin", "original", "original_alone"]
HW_HOSTS = {b: h for b, h in HW_CONFIG["board_hosts"].items() if h}


wildcard_constraints:
    board="|".join(re.escape(b) for b in HW_BOARDS),
    network="|".join(HW_NETWORKS),
    role="|".join(HW_ROLES),


def get_hw_checkpoint(wc):
    if wc.network == "original_q":
        return rules.hw_quantize_original.output.checkpoint
    return expand(
        rules.train_twin.output.checkpoint, twin=wc.network.removeprefix("twin_")
    )[0]


def get_hw_build_inputs(wc):
    network = f"twin_{wc.twin}" if wc.role == "twin" else "original_q"
    colocate = {
        "twin": "folding_twin",
        "original": "folding_original",
        "original_alone": "folding_original_alone",
    }
    return {
        "dataflow": expand(rules.hw_prepare.output.dataflow, network=network)[0],
        "folding": expand(
            getattr(rules.hw_colocate.output, colocate[wc.role]),
            board=wc.board,
            twin=wc.twin,
        )[0],
    }


def get_hw_board_reports(wildcards=None):
    """Board timing reports, only for boards with a host in hardware.board_hosts."""
    return expand(
        f"{HW}/board/{{board}}__{{twin}}__{{role}}.json",
        board=[b for b in HW_BOARDS if b in HW_HOSTS],
        twin=HW_TWINS,
        role=[*HW_ROLES, "pair"],
    )
