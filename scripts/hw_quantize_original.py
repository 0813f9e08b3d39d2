"""Rule hw_quantize_original: the 8-bit original (PTQ, optional short QAT) and its logits."""
from twindnn.config import QuantizeStage
from twindnn.snakemake_io import run_rule
from twindnn.steps.fpga import quantize_original_step

run_rule(snakemake, QuantizeStage, quantize_original_step, extra_outputs={"work_dir": snakemake.params.work_dir})
