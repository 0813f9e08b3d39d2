"""The hardware rules name scripts that exist, and the boards they may name are defined."""
import re
from pathlib import Path

import yaml

from twindnn.hardware.boards import available_boards, load_board

ROOT = Path(__file__).resolve().parents[1]
SMK = ROOT / "workflow" / "rules" / "hardware.smk"


def test_rule_scripts_and_captions_exist():
    text = SMK.read_text()
    for rel in re.findall(r'"(\.\./\.\./scripts/[^"]+)"', text) + re.findall(r'caption="([^"]+)"', text):
        assert (SMK.parent / rel).resolve().exists(), rel


def test_schema_boards_are_defined():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    enum = schema["properties"]["hardware"]["properties"]["boards"]["items"]["enum"]
    assert sorted(enum) == available_boards()
    for name in enum:
        board = load_board(name)
        assert board["resources"]["LUT"] > 0 and board["clock_mhz"] > 0
