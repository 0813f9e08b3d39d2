"""Rules logits_original and logits_twin: logits and labels on the val and test splits."""
from twindnn.config import LogitsStage
from twindnn.snakemake_io import run_rule
from twindnn.steps.software import logits

run_rule(snakemake, LogitsStage, logits)
