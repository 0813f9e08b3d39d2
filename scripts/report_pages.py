"""Rule report_pages: each table of the run as an HTML page, so the report shows its numbers."""
from twindnn.snakemake_io import redirect_logs
from twindnn.steps.software import report_pages

with redirect_logs(snakemake.log[0]):
    print(report_pages(dict(snakemake.input.items()), dict(snakemake.output.items())))
