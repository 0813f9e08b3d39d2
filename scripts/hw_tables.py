"""Rule hw_tables: resources, FPS (estimated / measured) and headline tables, accuracy-vs-throughput figure."""
from twindnn.config import TablesStage
from twindnn.hardware.steps import tables_step
from twindnn.snakemake_io import run_rule

run_rule(snakemake, TablesStage, tables_step)
