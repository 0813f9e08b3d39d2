"""Rule hw_tables: resources, FPS (estimated / measured) and headline tables, accuracy-vs-throughput figure."""
from twindnn.config import TablesStage
from twindnn.snakemake_io import run_rule
from twindnn.steps.fpga import tables_step

run_rule(snakemake, TablesStage, tables_step)
