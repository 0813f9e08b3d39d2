"""Runs ON THE BOARD (copied there by twindnn.hardware.board_timing): throughput test and
real-image accuracy of one FINN+ accelerator, with the finn-plus-driver package.

usage: python3 twindnn_board_run.py BITFILE SETTINGS_JSON IMAGES_NPY LABELS_NPY BATCH OUT_JSON LOGIT_SCALE
       python3 twindnn_board_run.py pair BITFILE SETTINGS_JSON IMAGES_NPY LABELS_NPY BATCH OUT_JSON
               TWIN_SCALE ORIGINAL_SCALE THRESHOLD SCHEDULER TWIN_PORT ORIGINAL_PORT

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


def open_accelerator(bitfile, settings, batch):
    """The finn-plus driver of a deployment package, for batches of ``batch`` images."""
    with open(settings, encoding="utf-8") as f:
        info = json.load(f)["driver_information"]
    here = os.path.dirname(os.path.abspath(settings))
    info.setdefault("runtime_weight_dir", os.path.join(here, "runtime_weights"))
    info.setdefault("mlo_weight_dir", os.path.join(here, "mlo_weights"))
    info["batch_size"] = int(batch)
    return get_driver_class(info["driver_type"])(bitfile, **info)


def main(bitfile, settings, images_npy, labels_npy, batch, out_json, logit_scale):
    accel = open_accelerator(bitfile, settings, batch)
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




# --------------------------------------------------------------------------- the pair (work sharing)


class DmaPort:
    """One network of the pair's FINN+ Parallel design, driven through its own DMA channels.

    The driver's ``execute_on_buffers`` starts every input and output DMA at once; the host loop
    needs each network on its own, so this programs input DMA ``i`` and output DMA ``o`` only,
    with the same register writes the driver makes (``zynq-iodma``) or the same DMA objects
    (``alveo``)."""

    def __init__(self, accel, i, o):
        self.accel, self.i, self.o, self.count, self.handle = accel, i, o, 0, None

    def start(self, images):
        a, i, o = self.accel, self.i, self.o
        self.count = len(images)
        batch = np.zeros(a.ishape_normal(i), dtype=np.float32)  # the buffers hold a full batch
        batch[: self.count] = images
        a.copy_input_data_to_device(a.pack_input(a.fold_input(batch, ind=i), ind=i), ind=i)
        if a.platform == "zynq-iodma":
            for dma, buf in ((a.odma[o], a.obuf_packed_device[o]), (a.idma[i], a.ibuf_packed_device[i])):
                dma.write(0x10, buf.device_address & 0xFFFFFFFF)
                dma.write(0x14, (buf.device_address >> 32) & 0xFFFFFFFF)
                dma.write(0x1C, self.count)
                dma.write(0x00, 1)
        else:  # alveo
            a.idma[i].start(a.ibuf_packed_device[i], self.count)
            self.handle = a.odma[o].start(a.obuf_packed_device[o], self.count)

    def poll(self):
        if self.accel.platform == "zynq-iodma":
            return self.accel.odma[self.o].read(0x00) & 0x2 != 0
        return self.handle is not None and self.handle.done

    def result(self):
        a, o = self.accel, self.o
        if self.handle is not None:
            self.handle.wait()
            self.handle = None
        a.copy_output_data_from_device(a.obuf_packed[o], ind=o)
        out = a.unfold_output(a.unpack_output(a.obuf_packed[o], ind=o), ind=o)
        return np.asarray(out).reshape(a.batch_size, -1)[: self.count]


def pair(bitfile, settings, images_npy, labels_npy, batch, out_json, twin_scale, original_scale, threshold,
         scheduler, twin_port, original_port):
    """Time the pair with the paper's host loop (host_loop.py, copied beside this script)."""
    import host_loop

    accel = open_accelerator(bitfile, settings, batch)
    images, labels = np.load(images_npy).astype(np.float32), np.load(labels_npy)
    ports = [DmaPort(accel, int(p), int(p)) for p in (twin_port, original_port)]
    report = host_loop.run(ports[0], ports[1], images, labels, float(threshold), scheduler=scheduler,
                           batch=int(batch), twin_scale=float(twin_scale), original_scale=float(original_scale))
    report["fclk_mhz_actual"] = float(getattr(accel, "fclk_mhz_actual", float("nan")))
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    if sys.argv[1] == "pair":
        pair(*sys.argv[2:14])
    else:
        main(*sys.argv[1:8])
