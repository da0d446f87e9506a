"""bench/torch/vgg16.py: torchvision's VGG16 up to fc2 (features, then the classifier up to
its second ReLU) at 224x224, timed in PyTorch for comparison with bench/encoders.lua.
Not a replica with luacap's weights: both sides use random weights, and the time of a
forward pass does not depend on their values.

Each figure is one JSON line on stdout, in the fields bench/torch/seed.py emits (figure,
value, unit, better, side, threads) plus the layout and the timed runs:
  {"figure": "vgg16_b16_mkldnn", "value": 3.5, "unit": "images/s", "better": "higher",
   "side": "torch", "threads": 2, "layout": "mkldnn", "runs": [..seconds..]}
one per (batch, layout), then per batch "vgg16_b1" / "vgg16_b16": the fastest layout's. The
layouts: the default module (dense NCHW tensors), the same in channels_last memory format
(NHWC, as luacap; on this machine PyTorch's fastest at batch 1) and
torch.utils.mkldnn.to_mkldnn (oneDNN's blocked tensors).
Give PyTorch its best configuration when calling it: OMP_NUM_THREADS=N and
LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp (the OpenMP flavour behind
libblas.so.3, for this process only); --threads N sets torch.set_num_threads(N).

Usage: python3 bench/torch/vgg16.py [--threads N] [--batch 1,16] [--runs R]
"""
import argparse
import json
import statistics
import time

import torch
import torch.utils.mkldnn
import torchvision


def fc2_model():
    """torchvision VGG16 to fc2: features, avgpool (identity at 7x7), flatten, fc1, ReLU,
    Dropout (identity in eval), fc2, ReLU."""
    vgg = torchvision.models.vgg16(weights=None).eval()
    head = torch.nn.Sequential(*list(vgg.classifier.children())[:5])
    return vgg.features, vgg.avgpool, head


def forward_fn(layout):
    features, avgpool, head = fc2_model()
    if layout == "mkldnn":
        features = torch.utils.mkldnn.to_mkldnn(features)
        head = torch.utils.mkldnn.to_mkldnn(head)

        def run(x):
            y = features(x.to_mkldnn()).to_dense()
            return head(torch.flatten(avgpool(y), 1))
    elif layout == "channels_last":
        features = features.to(memory_format=torch.channels_last)

        def run(x):
            y = features(x.contiguous(memory_format=torch.channels_last))
            return head(torch.flatten(avgpool(y), 1))
    else:
        def run(x):
            return head(torch.flatten(avgpool(features(x)), 1))
    return run


def time_runs(fn, x, runs):
    with torch.no_grad():
        fn(x)                           # warm-up: allocations, kernel selection
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn(x)
            ts.append(time.perf_counter() - t0)
    return ts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--batch", default="1,16")
    ap.add_argument("--runs", type=int, default=0, help="0: 7 at batch 1, 3 above")
    ap.add_argument("--quick", action="store_true", help="2 runs per figure (compare.lua --quick)")
    args = ap.parse_args()
    if args.quick and not args.runs:
        args.runs = 2
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    for batch in [int(b) for b in args.batch.split(",")]:
        runs = args.runs or (7 if batch == 1 else 3)
        x = torch.randn(batch, 3, 224, 224) * 60
        best = None
        for layout in ("default", "channels_last", "mkldnn"):
            ts = time_runs(forward_fn(layout), x, runs)
            ips = batch / statistics.median(ts)
            line = {"figure": "vgg16_b%d_%s" % (batch, layout), "value": round(ips, 3),
                    "unit": "images/s", "better": "higher", "side": "torch",
                    "threads": args.threads, "layout": layout,
                    "runs": [round(t, 4) for t in ts]}
            print(json.dumps(line), flush=True)
            if best is None or ips > best["value"]:
                best = line
        print(json.dumps(dict(best, figure="vgg16_b%d" % batch)), flush=True)
        if batch == 16:   # Flickr8k's 8,091 images at the best layout's batch-16 rate
            print(json.dumps({"figure": "flickr8k_extract", "value": round(8091 / best["value"] / 60, 2),
                              "unit": "min", "better": "lower", "side": "torch",
                              "threads": args.threads}), flush=True)


if __name__ == "__main__":
    main()
