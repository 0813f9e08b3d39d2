"""Rule answer: the run's answer at the design point, printed to the console and shown first in the report."""
from twindnn.config import AnswerStage
from twindnn.snakemake_io import run_rule
from twindnn.steps.software import answer

run_rule(snakemake, AnswerStage, answer)
