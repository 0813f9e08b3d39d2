"""The steps the rule scripts call, each ``step(stage, inputs, outputs)``: :mod:`.software` (data,
training, logits, cascade, timing, the report) and :mod:`.fpga` (quantization, FINN+ front end,
search, builds, boards, FPGA tables). ``stage`` is the rule's config object
(:mod:`twindnn.config`); ``inputs`` and ``outputs`` map the rule's input/output names to paths."""
