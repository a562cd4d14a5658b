#!/usr/bin/env python
"""The original SpykeTorch code (torch on CPU) on given images: ms per image of each phase of the
Mozafari et al. (2019) MNIST network, as ``shared/bench/spyketorch_conv.py`` times them, plus inference.

    python benchmarks/spyketorch_phases.py --images-npy imgs.npy --labels-npy labels.npy --threads 1 \
        --bench-dir ../shared/bench

Phases, in this order on one network: the front end (DoG + local normalisation + intensity-to-latency,
15 steps; MozafariDeep's ``S1C1Transform`` on ``ToTensor() * 255`` values), one layer-1 STDP epoch,
one layer-2 STDP epoch (SpykeTorch recomputes layer 1 for every image), one decision-layer R-STDP
epoch (recomputes layers 1 and 2) and inference of the trained network (``MozafariDeep.test``: all
three layers). Prints one JSON line: wall-clock ms per image and the process CPU time per image.

The SpykeTorch code is imported from ``BENCH_DIR/spyketorch`` (GPL-3.0, never copied into this
project); ``BENCH_DIR/spyketorch_stub`` stands in for torchvision. Runs in its own virtual
environment (``benchmarks/.venvs/spyketorch``, made by ``benchmarks/run.py --spyketorch``).
"""
import argparse
import json
import os
import sys
import time
import types


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images-npy", required=True, help="uint8 images (N, 28, 28)")
    ap.add_argument("--labels-npy", required=True, help="int labels (N,)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bench-dir", required=True, help="folder holding spyketorch/ and spyketorch_stub/")
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(a.bench_dir, "spyketorch"))
    sys.path.insert(0, os.path.join(a.bench_dir, "spyketorch_stub"))
    import numpy as np
    import torch

    torch.set_num_threads(a.threads)
    from SpykeTorch import functional as sf, utils

    md = types.ModuleType("MozafariDeep")  # the module trains at import: take its definitions only
    src = open(os.path.join(a.bench_dir, "spyketorch", "MozafariDeep.py")).read().splitlines()
    cut = next(i for i, line in enumerate(src) if line.startswith("kernels = "))
    exec(compile("\n".join(src[:cut]), "MozafariDeep.py", "exec"), md.__dict__)
    md.use_cuda = False
    raw = np.load(a.images_npy)
    labels = np.load(a.labels_npy).astype(int)
    n = raw.shape[0]
    images = torch.tensor(raw.reshape(n, 1, 28, 28) / 255.0, dtype=torch.float32)
    kernels = [utils.DoGKernel(3, 3 / 9, 6 / 9), utils.DoGKernel(3, 6 / 9, 3 / 9), utils.DoGKernel(7, 7 / 9, 14 / 9),
               utils.DoGKernel(7, 14 / 9, 7 / 9), utils.DoGKernel(13, 13 / 9, 26 / 9), utils.DoGKernel(13, 26 / 9, 13 / 9)]
    dog = utils.Filter(kernels, padding=6, thresholds=50)
    latency = utils.Intensity2Latency(15)

    def encode(x):  # as MozafariDeep's S1C1Transform, on ToTensor()*255 values
        return latency(sf.local_normalization(dog(x.unsqueeze(0) * 255), 8)).sign().byte()

    t0, c0 = time.perf_counter(), time.process_time()
    waves = [encode(images[i]) for i in range(n)]
    timed = {"front_end": time.perf_counter() - t0}
    cpu = {"front_end": time.process_time() - c0}
    net = md.MozafariMNIST2018()
    out = {}
    for name, fn in (("layer1_stdp", lambda: md.train_unsupervise(net, waves, 1)),
                     ("layer2_stdp", lambda: md.train_unsupervise(net, waves, 2)),
                     ("decision_rstdp", lambda: md.train_rl(net, waves, labels)),
                     ("inference", lambda: md.test(net, waves, labels))):
        t0, c0 = time.perf_counter(), time.process_time()
        out[name] = fn()
        timed[name], cpu[name] = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps(dict(tool="spyketorch", net="conv-mozafari", threads=a.threads, images=n, torch=torch.__version__,
                          ms_per_image={k: round(1e3 * v / n, 3) for k, v in timed.items()},
                          cpu_ms_per_image={k: round(1e3 * v / n, 3) for k, v in cpu.items()},
                          decision_train=[float(x) for x in out["decision_rstdp"]],
                          inference=[float(x) for x in out["inference"]])))


if __name__ == "__main__":
    main()
