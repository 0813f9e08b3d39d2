"""Rule report_tables: the summary table and figures of one run."""
from twindnn.config import ReportStage
from twindnn.snakemake_io import run_rule
from twindnn.steps.software import report_tables

run_rule(snakemake, ReportStage, report_tables)
