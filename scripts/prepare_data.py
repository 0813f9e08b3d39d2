"""Rule prepare_data: decode the dataset once into the uint8 cache."""
from twindnn.config import DataStage
from twindnn.snakemake_io import run_rule
from twindnn.steps.software import prepare_data

run_rule(snakemake, DataStage, prepare_data, workers=snakemake.threads)
