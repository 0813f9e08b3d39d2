"""Rule throughput: time the original, the twin and the real cascade on this machine."""
from twindnn.config import ThroughputStage
from twindnn.snakemake_io import run_rule
from twindnn.steps.software import throughput

run_rule(snakemake, ThroughputStage, throughput)
