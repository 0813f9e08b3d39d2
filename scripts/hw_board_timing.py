"""Rule hw_board_timing: time one deployed accelerator on its board over SSH (needs a board host)."""
import json
from pathlib import Path

import numpy as np

from twindnn import data as data_lib
from twindnn.hardware.board_timing import run_on_board
from twindnn.snakemake_io import redirect_logs

p = snakemake.params
with redirect_logs(snakemake.log[0]):
    est = json.loads(Path(snakemake.input.estimates).read_text())
    images, labels = data_lib.load_split(Path(snakemake.input.meta).parent, "test")
    scale = (est.get("host_output") or {}).get("logit_scale", 1.0)
    row = run_on_board(est.get("deploy_dir") or "", np.asarray(images), np.asarray(labels), p.host, user=p.user,
                       batch_size=int(p.batch_size), logit_scale=scale)
    row["estimated_throughput_fps"] = est["estimated_throughput_fps"]
    Path(snakemake.output.report).write_text(json.dumps(row, indent=2))
    print(row)
