# Shared helpers: config validation, wildcard constraints, input/param functions. No rules here.
import json

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

RESULTS = f"{config.get('results_dir', 'results')}/{config['run_name']}"
TWINS = list(config["twins"])


wildcard_constraints:
    twin="|".join(TWINS),


def get_final_output():
    """The tables and figures of the run: what `snakemake` builds by default."""
    outputs = list(rules.report_tables.output)
    outputs += [rules.train_original.output.metrics]
    outputs += expand(rules.train_twin.output.metrics, twin=TWINS)
    return outputs


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
