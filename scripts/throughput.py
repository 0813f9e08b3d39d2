"""Rule throughput: time the original, the twin and the real cascade on this machine."""
import numpy as np
import torch

from twindnn.models import Normalize, load_checkpoint, load_trained
from twindnn.snakemake_io import redirect_logs
from twindnn.throughput import measure_throughput

settings = snakemake.params.settings
with redirect_logs(snakemake.log[0]):
    if snakemake.params.threads:
        torch.set_num_threads(int(snakemake.params.threads))
    data_meta = load_checkpoint(snakemake.input.original)["meta"]["data_meta"]
    images = np.load(snakemake.input.images, mmap_mode="r")[: settings["batch_size"]]
    images = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2)
    size = data_meta["image_size"]
    if images.shape[-1] != size:  # ImageNet: the cache is larger than the network input
        from torchvision.transforms.v2.functional import center_crop

        images = center_crop(images, [size, size])
    table = measure_throughput(
        load_trained(snakemake.input.original),
        load_trained(snakemake.input.twin),
        images,
        forwarded_fractions=settings["forwarded_fractions"],
        batch_size=settings["batch_size"],
        warmup=settings["warmup"],
        repeats=settings["repeats"],
        device=settings["device"],
        preprocess=Normalize(data_meta["mean"], data_meta["std"]),
    )
    table.to_csv(snakemake.output.throughput, index=False)
    print(table.to_string(index=False))
