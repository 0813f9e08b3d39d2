"""The FPGA half of TwinDNN: 8-bit original, QONNX export, FINN+ builds, co-location, system model,
board timing. See hardware/README.md."""
