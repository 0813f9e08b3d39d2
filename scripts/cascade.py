"""Rule cascade: sweep the gates of one twin and choose its operating points."""
from twindnn.config import CascadeStage
from twindnn.snakemake_io import run_rule
from twindnn.steps.software import cascade

run_rule(snakemake, CascadeStage, cascade)
