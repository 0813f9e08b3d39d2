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

