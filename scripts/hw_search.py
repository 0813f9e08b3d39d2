"""Rule hw_search: the design space of one network on one board (every design a FINN+ estimate)."""
import sys

from twindnn.config import SearchStage
from twindnn.snakemake_io import run_rule
from twindnn.steps.fpga import search_step

run_rule(snakemake, SearchStage, search_step, log=sys.stderr)
