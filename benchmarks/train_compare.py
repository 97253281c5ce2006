#!/usr/bin/env python3
"""One MNIST CNN training step, Lathe's compiled step against PyTorch's eager step, in one run.

The model is the Keras MNIST CNN as `lathe train mnist-cnn` trains it: Conv 32 3x3 ReLU, max pool
2, Conv 64 3x3 ReLU, max pool 2, Dropout 0.25, Flatten, Dense 128 ReLU, Dropout 0.5, Dense 10;
softmax cross-entropy on the logits; Adam (lr 1e-3). Both take the same first batch of the
real MNIST, run 3 warm-up steps and time 20 (forward, backward and update each), and use the
same thread count. The table gives Lathe's median over PyTorch's: below 1 is faster.

    benchmarks/train_compare.py --data ../shared/data/mnist [--lathe .build/release/lathe] [--threads 2]
                                [--batches 64 128] [--markdown FILE]
"""
import argparse, gzip, json, os, platform, statistics, subprocess, time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def mnist_batch(directory, batch):
    def read(name):
        path = os.path.join(directory, name)
        opener = gzip.open if os.path.exists(path + ".gz") else open
        with opener(path + ".gz" if os.path.exists(path + ".gz") else path, "rb") as f:
            return f.read()
    images = np.frombuffer(read("train-images-idx3-ubyte"), np.uint8, offset=16)[: batch * 784]
    labels = np.frombuffer(read("train-labels-idx1-ubyte"), np.uint8, offset=8)[:batch]
    return torch.tensor(images.reshape(batch, 1, 28, 28).astype(np.float32) / 255), torch.tensor(labels.astype(np.int64))


def pytorch_step_ms(x, y, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
                          nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    times = []
    for _ in range(20):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, min(times) * 1e3


def lathe_step_ms(lathe, data, batch, threads):
    run = subprocess.run([lathe, "train", "mnist-cnn", "--data", data, "--limit", str(max(batch, 256)), "--batch", str(batch),
                          "--threads", str(threads), "--profile", "--json"], capture_output=True, text=True, check=True)
    report = json.loads(run.stdout.strip().splitlines()[-1])
    return report["medianMs"], report["minMs"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "mnist"))
    parser.add_argument("--lathe", default=os.path.join(ROOT, ".build", "release", "lathe"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="*", default=[64, 128])
    parser.add_argument("--markdown", help="also write the table as Markdown to this file")
    args = parser.parse_args()

    rows = []
    print(f"torch {torch.__version__}; {args.threads} threads; {platform.processor() or platform.machine()}")
    for batch in args.batches:
        x, y = mnist_batch(args.data, batch)
        lathe = lathe_step_ms(args.lathe, args.data, batch, args.threads)
        torch_ms = pytorch_step_ms(x, y, args.threads)
        ratio = lathe[0] / torch_ms[0]
        rows.append((batch, lathe, torch_ms, ratio))
        print(f"batch {batch:4d}  Lathe {lathe[0]:8.2f} ms (min {lathe[1]:7.2f})  PyTorch {torch_ms[0]:8.2f} ms (min {torch_ms[1]:7.2f})  Lathe / PyTorch {ratio:.2f}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("# MNIST CNN training step: Lathe against PyTorch\n\n")
            f.write(f"`benchmarks/train_compare.py --threads {args.threads}`, one run, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
                    f"torch {torch.__version__} (eager), {args.threads} threads, {os.cpu_count()} CPUs ({platform.machine()}).\n")
            f.write("Median of 20 steps after 3 warm-up steps; a step is forward, backward and the Adam update.\n\n")
            f.write("| batch | Lathe ms (min) | PyTorch ms (min) | Lathe / PyTorch |\n|---:|---:|---:|---:|\n")
            for batch, lathe, torch_ms, ratio in rows:
                f.write(f"| {batch} | {lathe[0]:.2f} ({lathe[1]:.2f}) | {torch_ms[0]:.2f} ({torch_ms[1]:.2f}) | {ratio:.2f} |\n")


if __name__ == "__main__":
    main()
