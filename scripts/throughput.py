"""Rule throughput: time the original, the twin and the real cascade on this machine."""
from twindnn.config import ThroughputStage
from twindnn.pipeline import throughput
from twindnn.snakemake_io import run_rule

run_rule(snakemake, ThroughputStage, throughput)
