"""Rule hw_build: FINN+ build of one network on one board (estimates; bitstream where Vivado is)."""
from twindnn.hardware.pipeline import build_step
from twindnn.snakemake_io import redirect_logs

with redirect_logs(snakemake.log[0]):
    est = build_step(snakemake.params.config, snakemake.wildcards.board, snakemake.input.dataflow,
                     snakemake.input.folding, snakemake.params.build_dir, snakemake.output.estimates)
    print({k: v for k, v in est.items() if k != "layers"})
