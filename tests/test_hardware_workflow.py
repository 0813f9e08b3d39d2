"""The hardware rules name scripts that exist, and the boards they may name are defined."""
import re
from pathlib import Path

import yaml

from twindnn.hardware.boards import available_boards, load_board

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "workflow" / "rules"
HARDWARE_STAGES = ("quantize", "finn", "search", "build", "board", "hw_tables")


def test_rule_scripts_and_captions_exist():
    for stage in HARDWARE_STAGES:
        smk = RULES / f"{stage}.smk"
        text = smk.read_text()
        for rel in re.findall(r'"(\.\./\.\./scripts/[^"]+)"', text) + re.findall(r'caption="([^"]+)"', text):
            assert (smk.parent / rel).resolve().exists(), f"{smk.name}: {rel}"


def test_schema_boards_are_defined():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    enum = schema["properties"]["hardware"]["properties"]["boards"]["items"]["enum"]
    assert sorted(enum) == available_boards()
    for name in enum:
        board = load_board(name)
        assert board["resources"]["LUT"] > 0 and board["clock_mhz"] > 0
