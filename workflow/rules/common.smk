# Shared helpers: config validation, wildcard constraints, input/param functions. No rules here.
import json
import re

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

RESULTS = f"{config.get('results_dir', 'results')}/{config['run_name']}"
TWINS = list(config["twins"])


wildcard_constraints:
    twin="|".join(TWINS),


def get_final_output():
    """The tables and figures of the run: what `snakemake` builds by default."""
    outputs = list(rules.report_tables.output) + list(rules.compare_anchors.output)
    outputs += [rules.train_original.output.metrics]
    outputs += expand(rules.train_twin.output.metrics, twin=TWINS)
    if config.get("hardware"):
        outputs += list(rules.hw_tables.output)
    return outputs


def get_anchor_inputs(wildcards):
    """The FPGA headline table, where the run builds the hardware half."""
    return (
        {"fpga_headline": rules.hw_tables.output.headline}
        if config.get("hardware")
        else {}
    )


def get_config_for(*sections):
    """Only the config sections a job reads, as its params: editing another section of the
    config (a new board, another gate) leaves that job's outputs up to date."""
    subset = {k: config[k] for k in sections if k in config}
    subset["run_name"] = config["run_name"]
    return subset


def get_twin_config(wildcards):
    """The config a twin's training reads: its own entry of `twins`, not the others'."""
    subset = get_config_for("dataset", "twin", "compute")
    subset["twins"] = {wildcards.twin: config["twins"][wildcards.twin]}
    return subset


def get_twin_files(pattern):
    """One file per configured twin, in config order."""
    return expand(pattern, twin=TWINS)


def get_train_threads():
    """Cores of a training job: compute.threads, else its data-loader workers plus one (at least 2)."""
    compute = config["compute"]
    return compute.get("threads") or max(2, compute.get("num_workers", 0) + 1)


def get_data_workers():
    """Decoding processes of the data-preparation job."""
    return config["compute"].get("data_workers", 2)


def get_train_resources(name):
    """Scheduler resources of a training job, from the compute section."""
    compute = config["compute"]
    return {
        "gpu": compute.get("gpus", 0),
        "mem_mb": compute.get("mem_mb", 8000),
        "runtime": compute.get("train_runtime_min", 120),
    }


# ---- FPGA half (workflow/rules/hardware.smk)

HW = f"{RESULTS}/hardware"
HW_CONFIG = config.get("hardware") or {}
HW_BOARDS = list(HW_CONFIG.get("boards", ["Pynq-Z2"]))
HW_TWINS = list(HW_CONFIG.get("twins") or TWINS)
HW_NETWORKS = ["original_q"] + [f"twin_{t}" for t in HW_TWINS]
HW_ROLES = ["twin", "original", "original_alone"]
HW_HOSTS = HW_CONFIG.get("board_hosts") or {}


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
    boards = [b for b in HW_BOARDS if HW_HOSTS.get(b)]
    return expand(
        f"{HW}/board/{{board}}__{{twin}}__{{role}}.json",
        board=boards,
        twin=HW_TWINS,
        role=HW_ROLES,
    )
