"""Rule report_tables: the summary table and figures of one run."""
from twindnn.config import ReportStage
from twindnn.pipeline import report_tables
from twindnn.snakemake_io import run_rule

run_rule(snakemake, ReportStage, report_tables)
