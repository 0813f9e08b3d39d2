"""Board timing: the finn-plus driver's report format, and no run without a host."""
import numpy as np
import pytest

from twindnn.hardware.board_timing import NoBoardError, parse_driver_report, run_on_board

# What `finn-plus-driver -f throughput_test` prints (a Python dict), plus fclk_mhz_actual.
PRINTED = (
    "Loading bitfile...\n"
    "{'runtime[ms]': 12.5, 'throughput[images/s]': 8000.0, 'DRAM_in_bandwidth[MB/s]': 50.2, "
    "'DRAM_out_bandwidth[MB/s]': 0.64, 'fclk[mhz]': 100.0, 'batch_size': 100, 'fold_input[ms]': 0.01, "
    "'pack_input[ms]': 0.2, 'copy_input_data_to_device[ms]': 0.3, 'copy_output_data_from_device[ms]': 0.02, "
    "'unpack_output[ms]': 0.4, 'unfold_output[ms]': 0.01, 'fclk_mhz_actual': 187.5}\n"
)


def test_parses_printed_driver_report_and_uses_actual_clock():
    row = parse_driver_report(PRINTED)
    assert row["measured_throughput_fps"] == 8000.0
    assert row["runtime_ms"] == 12.5
    assert row["dram_in_bandwidth_mb_s"] == pytest.approx(50.2)
    assert row["fclk_reported_mhz"] == 100.0
    assert row["clock_mhz"] == 187.5  # the real fabric clock, not the clock wizard's input
    assert row["copy_input_ms"] == pytest.approx(0.3)
    assert row["source"] == "measured on board"


def test_parses_json_report_without_actual_clock():
    row = parse_driver_report('{"throughput[images/s]": 10.0, "runtime[ms]": 1.0, "fclk[mhz]": 200.0}')
    assert row["clock_mhz"] == 200.0


def test_rejects_output_without_report():
    with pytest.raises(ValueError):
        parse_driver_report("segmentation fault")


def test_refuses_without_host(tmp_path):
    with pytest.raises(NoBoardError):
        run_on_board(tmp_path, np.zeros((1, 4, 4, 1), np.uint8), np.zeros(1), host=None)
    with pytest.raises(NoBoardError):
        run_on_board(tmp_path, np.zeros((1, 4, 4, 1), np.uint8), np.zeros(1), host="")


def test_pair_timing_refuses_without_host_and_without_a_package(tmp_path):
    from twindnn.hardware.board_timing import run_pair_on_board

    images, labels = np.zeros((2, 4, 4, 1), np.uint8), np.zeros(2)
    with pytest.raises(NoBoardError, match="refusing to time the pair"):
        run_pair_on_board(tmp_path, images, labels, None, threshold=1.0, scheduler="work_sharing", twin_scale=1.0,
                          original_scale=1.0)
    with pytest.raises(FileNotFoundError, match="hw_build_pair"):
        run_pair_on_board(tmp_path, images, labels, "board.local", threshold=1.0, scheduler="work_sharing",
                          twin_scale=1.0, original_scale=1.0)



def test_board_runs_copy_the_package_and_run_the_script_over_a_simulated_ssh(tmp_path, monkeypatch):
    """ssh/scp replaced by a recorder that answers with the report the board script would write."""
    import json
    from pathlib import Path

    from twindnn.hardware import board_timing

    deploy = tmp_path / "deploy"
    (deploy / "bitfile").mkdir(parents=True)
    (deploy / "driver").mkdir()
    (deploy / "bitfile" / "top.bit").write_bytes(b"bit")
    (deploy / "driver" / "settings.json").write_text("{}")
    calls = []

    def ssh(host, command, user, timeout):
        calls.append(("ssh", command))
        return ""

    def scp(sources, host, dest, user, timeout, fetch=False):
        calls.append(("scp", [Path(str(s)).name for s in sources], fetch))
        if fetch:
            report = {"throughput[images/s]": 900.0, "fclk_mhz_actual": 99.9, "accuracy": 0.5} if "pair" not in \
                str(sources[0]) else {"measured_throughput_fps": 1500.0, "accuracy": 0.6, "scheduler": "work_sharing"}
            Path(dest).write_text(json.dumps(report))

    monkeypatch.setattr(board_timing, "_ssh", ssh)
    monkeypatch.setattr(board_timing, "_scp", scp)
    images, labels = np.zeros((4, 8, 8, 3), np.uint8), np.zeros(4)
    single = board_timing.run_on_board(deploy, images, labels, "board.local", batch_size=2, logit_scale=0.5)
    assert single["measured_throughput_fps"] == 900.0 and single["clock_mhz"] == 99.9
    run = [c for c in calls if c[0] == "ssh" and "twindnn_board_run.py" in c[1]][-1][1]
    assert "bitfile/top.bit driver/settings.json images.npy labels.npy 2 report.json 0.5" in run
    pair = board_timing.run_pair_on_board(deploy, images, labels, "board.local", threshold=1.5,
                                          scheduler="work_sharing", twin_scale=0.25, original_scale=0.5)
    run = [c for c in calls if c[0] == "ssh" and "twindnn_board_run.py" in c[1]][-1][1]
    assert "twindnn_board_run.py pair bitfile/top.bit" in run and "0.25 0.5 1.5 work_sharing 0 1" in run
    copied = [c[1] for c in calls if c[0] == "scp" and not c[2]][-1]
    assert {"host_loop.py", "twindnn_board_run.py", "bitfile", "driver"} <= set(copied)
    assert pair["measured_throughput_fps"] == 1500.0 and pair["source"] == "measured on board"
