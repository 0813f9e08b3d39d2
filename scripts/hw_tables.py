"""Rule hw_tables: resources, FPS (estimated / measured) and headline tables, accuracy-vs-throughput figure."""
from twindnn.hardware import tables
from twindnn.snakemake_io import redirect_logs

i, o = snakemake.input, snakemake.output
with redirect_logs(snakemake.log[0]):
    res = tables.resource_table(list(i.builds))
    res.to_csv(o.resources, index=False)
    tables.fps_table(res, list(i.board_reports), list(i.checks)).to_csv(o.fps, index=False)
    head = tables.headline_table(list(i.systems))
    head.to_csv(o.headline, index=False)
    tables.accuracy_vs_throughput_figure(head, o.figure)
    print(head.to_string(index=False))
