"""Rules logits_original and logits_twin: logits and labels on the val and test splits."""
from pathlib import Path

from twindnn.pipeline import save_logits
from twindnn.snakemake_io import redirect_logs

with redirect_logs(snakemake.log[0]):
    accuracy = save_logits(snakemake.params.config, snakemake.input.checkpoint, Path(snakemake.input.meta).parent,
                           snakemake.output.logits, device=snakemake.params.config["compute"]["device"])
    print(accuracy)
