"""Rule prepare_data: decode the dataset once into the uint8 cache."""
from pathlib import Path

from twindnn.data import prepare_dataset
from twindnn.snakemake_io import redirect_logs

with redirect_logs(snakemake.log[0]):
    meta = prepare_dataset(snakemake.params.dataset, Path(snakemake.output.meta).parent, workers=snakemake.threads)
    print({k: v for k, v in meta.items() if k != "classes"})
