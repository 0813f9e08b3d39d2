"""Rule compare_anchors: this run's recovery, accuracies and FPGA gain beside the published anchors."""
import json

import pandas as pd
import yaml

from twindnn import report
from twindnn.models import TwinSpec
from twindnn.provenance import collect
from twindnn.snakemake_io import redirect_logs

i, o, p = snakemake.input, snakemake.output, snakemake.params
with redirect_logs(snakemake.log[0]):
    with open(i.anchors) as f:
        anchors = yaml.safe_load(f)
    with open(i.data_meta) as f:
        data_meta = json.load(f)
    twin_bits = {}
    for name, cfg in p.config["twins"].items():
        spec = TwinSpec.from_config(name, cfg)
        twin_bits[name] = ("T" if spec.ternary else spec.weight_bits, spec.act_bits)
    headline = pd.read_csv(i.fpga_headline) if i.get("fpga_headline") else None
    table = report.anchor_table(pd.read_csv(i.summary), anchors, twin_bits, data_meta["dataset"], headline)
    report.write_table(table, o.csv, o.md, o.tex, collect(p.config, data_meta),
                       title=f"{p.config['run_name']}: this run beside the published anchors")
    print(table.to_string(index=False))
