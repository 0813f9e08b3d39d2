"""Rule hw_quantize_original: the 8-bit original (PTQ, optional short QAT) and its logits."""
from twindnn.config import QuantizeStage
from twindnn.hardware.steps import quantize_original_step
from twindnn.snakemake_io import run_rule

run_rule(snakemake, QuantizeStage, quantize_original_step, extra_outputs={"work_dir": snakemake.params.work_dir})
