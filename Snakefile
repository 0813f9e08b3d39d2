# TwinDNN: a compressed twin answers every input; the original answers the unsure ones.
# This file only wires the stages; each lives in workflow/rules/<stage>.smk.
from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless --configfile names another (no merging of the two).
if not config:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/logits.smk"
include: "workflow/rules/cascade.smk"
include: "workflow/rules/throughput.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/quantize.smk"
include: "workflow/rules/finn.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/build.smk"
include: "workflow/rules/board.smk"
include: "workflow/rules/hw_tables.smk"
include: "workflow/rules/answer.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
