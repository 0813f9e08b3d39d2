"""Runs ON THE BOARD (copied there by twindnn.hardware.board_timing): throughput test and
real-image accuracy of one FINN+ accelerator, with the finn-plus-driver package.

usage: python3 twindnn_board_run.py BITFILE SETTINGS_JSON IMAGES_NPY LABELS_NPY BATCH OUT_JSON LOGIT_SCALE

Prints nothing but progress; writes OUT_JSON with the driver's throughput report (keys as the
driver names them: throughput[images/s], runtime[ms], DRAM_in_bandwidth[MB/s], fclk[mhz], ...),
fclk_mhz_actual (the fabric clock the design really runs at; on Zynq fclk[mhz] is the clock
wizard's input) and the top-1 accuracy on the given images.
"""
import json
import os
import sys

import numpy as np
from finn_plus_driver import get_driver_class


def main(bitfile, settings, images_npy, labels_npy, batch, out_json, logit_scale):
    with open(settings, encoding="utf-8") as f:
        info = json.load(f)["driver_information"]
    here = os.path.dirname(os.path.abspath(settings))
    info.setdefault("runtime_weight_dir", os.path.join(here, "runtime_weights"))
    info.setdefault("mlo_weight_dir", os.path.join(here, "mlo_weights"))
    info["batch_size"] = int(batch)
    accel = get_driver_class(info["driver_type"])(bitfile, **info)
    report = dict(accel.throughput_test())
    report["fclk_mhz_actual"] = float(getattr(accel, "fclk_mhz_actual", report.get("fclk[mhz]", float("nan"))))
    images, labels = np.load(images_npy), np.load(labels_npy)  # uint8 NHWC, int labels
    correct = 0
    for start in range(0, len(images) - len(images) % int(batch), int(batch)):
        out = accel.execute(images[start:start + int(batch)].astype(np.float32))
        logits = np.asarray(out).reshape(int(batch), -1) * float(logit_scale)
        correct += int((logits.argmax(1) == labels[start:start + int(batch)]).sum())
    n = len(images) - len(images) % int(batch)
    report["accuracy_images"] = n
    report["accuracy"] = correct / n if n else float("nan")
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main(*sys.argv[1:8])
