#!/usr/bin/env python3
"""Lathe against ONNX Runtime (and OpenVINO, where it is installed) on the same ONNX models,
the same thread count and the same machine, in one run.

For each model it checks that Lathe's outputs match ONNX Runtime's (max |diff| / max |ort| at
most 1e-4, on the same seeded input), then times the runtimes in 7 interleaved rounds: each
round times Lathe, then ONNX Runtime, then OpenVINO, each for about 2 s (after 0.2 s of warm-up
runs, then at least 3 runs), so that a burst of other load on a shared machine falls on all of
them alike. Every round of every runtime runs in a process of its own (Lathe's `lathe bench
--json`, the peers' benchmarks/peer_round.py): on this shared machine a fresh process draws its
memory anew, and a model's rounds in fresh processes varied by up to 2x, so a runtime kept in one
process for all its rounds drew once where the others drew five times. A runtime's median is the
median of its 7 round medians, its min the least run; in ms. Compile time is excluded (the peers'
session creation is reported apart; Lathe's compile time is a cold one, without its machine-code
cache). The table gives Lathe's median over each peer's: below 1 is faster.

--baseline PATH times a second Lathe binary (a build of an earlier commit, say) in the same
rounds, as "Lathe before", so that a change is measured against what it replaces in one run.

--contention also times every runtime with busy processes beside it: in each round, right after
a runtime's idle round, the same round again with one spinning process per CPU the benchmark may
use (started before the round, killed after it). Each runtime's slowdown is its loaded median
over its idle median, both from the same interleaved rounds; a second table gives them.

    benchmarks/compare.py [--lathe .build/release/lathe] [--baseline OLD_LATHE] [--threads 2] [--contention]
                          [--rounds 7] [--only NAME ...] [--markdown FILE]

Timings on a shared 2-core machine swing by 20-60% from minute to minute; compare within a run.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

import numpy as np
import onnxruntime as ort

ort.set_default_logger_severity(3)  # the light zoo's unused initializers would fill the output with warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
from zoo import MODERN_MODELS, models, modern, relative, safe  # noqa: E402
from peer_round import feeds as seeded_feeds, ort_dtype  # noqa: E402  (the peers' rounds take the same inputs)

DEFAULT_MODELS = ["keras_cnn_b1", "keras_cnn_b64", "mlp_simple", "lstm_ts", "bert_layer", "squeezenet", "mobilenet_v2", "resnet50", "vgg19",
                  "bert_base_seq128"] + MODERN_MODELS
# Runs a round fill its 2 s: a round of 40 runs (the cap before) lasted 0.16 s for the Keras CNN at
# batch 64, short enough for one burst of load to decide it.
# 7 rounds, not 5: on this shared host eight ResNet-50 processes of Lathe timed back to back gave
# medians from 38 to 55 ms, so with 5 rounds two slow draws could set a runtime's median.
ROUNDS, ROUND_BUDGET, ROUND_MIN = 7, 2.0, 3


def peer_round(kind, path, threads):
    """Median and min in ms of one round of a peer (ort or openvino) in a process of its own."""
    run = subprocess.run([sys.executable, os.path.join(HERE, "peer_round.py"), kind, path, str(threads), str(ROUND_BUDGET)],
                         capture_output=True, text=True, check=True)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    return result["medianMs"], result["minMs"]


class Spinners:
    """One busy-looping process per CPU this process may use, for the length of a `with` block."""

    def __enter__(self):
        count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        self.processes = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
        time.sleep(0.2)  # every spinner past Python's start-up and spinning
        return self

    def __exit__(self, *_):
        for p in self.processes:
            p.kill()
        for p in self.processes:
            p.wait()


def summary(rounds):
    """A runtime's median of round medians and least run, from its rounds' (median, min)."""
    return statistics.median(r[0] for r in rounds), min(r[1] for r in rounds)


def feeds_for(session):
    return seeded_feeds([(i.name, i.shape, ort_dtype(i.type)) for i in session.get_inputs()])


def lathe_outputs(lathe, path, feeds, names, threads, workdir, name):
    args = []
    for i, (key, value) in enumerate(feeds.items()):
        file = os.path.join(workdir, f"{name}_in{i}.npy")
        np.save(file, value)
        args += ["--input", f"{key}={file}"]
    outdir = os.path.join(workdir, f"{name}_out")
    run = subprocess.run([lathe, "run", path, "--threads", str(threads), "--output-dir", outdir] + args, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError((run.stderr or run.stdout).strip().splitlines()[-1][:300])
    return [np.load(os.path.join(outdir, safe(n) + ".npy")) for n in names]


def lathe_round(lathe, path, threads, iterations, warmup):
    """Median and min in ms of one round of Lathe (`lathe bench`) in a process of its own."""
    run = lathe_bench(lathe, path, threads, iterations, warmup)
    return run["medianMs"], run["minMs"]


def lathe_bench(lathe, path, threads, iterations, warmup, cold=False):
    # --no-cache: a cold compile, whose time is the one reported.
    return json.loads(subprocess.run([lathe, "bench", path, "--threads", str(threads), "--warmup", str(warmup), "--iterations", str(iterations), "--json"]
                                     + (["--no-cache"] if cold else []), capture_output=True, text=True, check=True).stdout)


def baseline_runs(baseline, path, threads):
    """Whether the earlier build runs the model at all (one that predates a model's input types
    cannot): if not, the row says n/a for it."""
    try:
        lathe_bench(baseline, path, threads, 1, 0)
        return True
    except Exception as e:
        print(f"note: the baseline does not run {os.path.basename(path)}: {str(e)[:200]}", flush=True)
        return False


def has_openvino():
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lathe", default=os.path.join(ROOT, ".build", "release", "lathe"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--markdown", help="also write the table as Markdown to this file")
    parser.add_argument("--baseline", help="another Lathe binary to time in the same rounds (\"Lathe before\")")
    parser.add_argument("--contention", action="store_true", help="also time each round with one spinning process per CPU")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    a = parser.parse_args()
    wanted = a.only or DEFAULT_MODELS
    rows, contention_rows = [], []
    header = f"onnxruntime {ort.__version__}; {a.threads} threads; Lathe: {subprocess.run([a.lathe, 'bench', '--help'], capture_output=True, text=True).returncode == 0 and a.lathe}"
    print(header, flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        candidates = models(workdir, wanted if a.only else None)
        if set(wanted) & set(MODERN_MODELS):
            candidates += modern(workdir, wanted)
        for name, path in candidates:
            if name not in wanted:
                continue
            options = ort.SessionOptions()
            options.intra_op_num_threads = a.threads
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            start = time.perf_counter()
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            ort_compile = time.perf_counter() - start
            feeds = feeds_for(session)
            expected = session.run(None, feeds)
            output_names = [o.name for o in session.get_outputs()]
            del session  # its threads stay out of the rounds, which run in processes of their own
            try:
                got = lathe_outputs(a.lathe, path, feeds, output_names, a.threads, workdir, name)
                error = max(relative(g, w) for g, w in zip(got, expected))
                cold = lathe_bench(a.lathe, path, a.threads, 3, 2, cold=True)
                iterations = int(max(ROUND_MIN, ROUND_BUDGET * 1000 / max(cold["medianMs"], 1e-3)))
                warmup = max(2, iterations // 10)
                runtimes = [("Lathe", lambda: lathe_round(a.lathe, path, a.threads, iterations, warmup))]
                if a.baseline and baseline_runs(a.baseline, path, a.threads):
                    runtimes.append(("Lathe before", lambda: lathe_round(a.baseline, path, a.threads, iterations, warmup)))
                runtimes.append(("ORT", lambda: peer_round("ort", path, a.threads)))
                if has_openvino():
                    runtimes.append(("OpenVINO", lambda: peer_round("openvino", path, a.threads)))
                idle = {runtime: [] for runtime, _ in runtimes}
                loaded = {runtime: [] for runtime, _ in runtimes}
                for _ in range(a.rounds):
                    for runtime, timed in runtimes:
                        idle[runtime].append(timed())
                        if a.contention:
                            with Spinners():
                                loaded[runtime].append(timed())
            except Exception as e:  # a failure is reported on its line and the loop goes on
                print(f"{name:14} Lathe FAILED: {e}", flush=True)
                rows.append((name, None, None, None, None, None, None, None, None))
                continue
            lathe_median, lathe_min = summary(idle["Lathe"])
            ort_median, ort_min = summary(idle["ORT"])
            ov = summary(idle["OpenVINO"]) if "OpenVINO" in idle else None
            before = summary(idle["Lathe before"]) if "Lathe before" in idle else None
            bench = {"medianMs": lathe_median, "minMs": lathe_min, "compileMs": cold["compileMs"],
                     "peakFraction": cold["peakFraction"] * cold["medianMs"] / lathe_median}
            row = (name, bench["medianMs"], bench["minMs"], bench["compileMs"], ort_median, ort_min, ov[0] if ov else None, error,
                   before[0] if before else None)
            rows.append(row)
            ov_text = f", OpenVINO {ov[0]:8.3f} ms ({bench['medianMs'] / ov[0]:.2f}x)" if ov else ""
            ov_text += f", Lathe before {before[0]:8.3f} ms (now / before {bench['medianMs'] / before[0]:.2f})" if before else ""
            print(f"{name:14} Lathe {bench['medianMs']:8.3f} ms (min {bench['minMs']:8.3f}, compile {bench['compileMs'] / 1000:5.2f} s, "
                  f"{bench['peakFraction'] * 100:4.1f}% of peak) | ORT {ort_median:8.3f} ms (min {ort_min:8.3f}, session {ort_compile:5.2f} s) | "
                  f"Lathe / ORT {bench['medianMs'] / ort_median:.2f}{ov_text} | max |diff| / max |ort| {error:.1e}"
                  f"{'' if error <= 1e-4 else '  DIFFERENT'}", flush=True)
            if a.contention:
                loaded_medians = {r: summary(loaded[r])[0] for r in idle}
                slowdowns = {r: (loaded_medians[r], loaded_medians[r] / summary(idle[r])[0]) for r in idle}
                contention_rows.append((name, slowdowns))
                print(f"{'':14} under load: " + ", ".join(f"{r} {loaded_ms:8.3f} ms ({slow:.2f}x)" for r, (loaded_ms, slow) in slowdowns.items())
                      + ("" if slowdowns["Lathe"][1] <= slowdowns["ORT"][1] else "  SLOWED MORE THAN ORT"), flush=True)
    if a.markdown:
        lines = ["| model | Lathe median ms | Lathe min ms | Lathe compile s | ORT median ms | ORT min ms | Lathe / ORT | OpenVINO median ms | "
                 + ("Lathe before median ms | now / before | " if a.baseline else "") + "max rel. diff |",
                 "|---|---|---|---|---|---|---|---|" + ("---|---|" if a.baseline else "") + "---|"]
        for name, lm, lmin, lc, om, omin, ov, err, before in rows:
            if lm is None:
                lines.append(f"| {name} | failed | | | | | | | " + ("| | " if a.baseline else "") + "|")
                continue
            lines.append(f"| {name} | {lm:.3f} | {lmin:.3f} | {lc / 1000:.2f} | {om:.3f} | {omin:.3f} | **{lm / om:.2f}** | "
                         f"{'%.3f' % ov if ov else 'n/a'} | " + ((f"{before:.3f} | {lm / before:.2f} | " if before else "n/a | | ") if a.baseline else "")
                         + f"{err:.1e} |")
        if contention_rows:
            names = list(contention_rows[0][1])  # the runtimes, in the order they were timed
            lines += ["", "Under load (one spinning process per CPU), same rounds: loaded median ms and slowdown (loaded / idle median).", "",
                      "| model | " + " | ".join(f"{r} loaded ms | {r} slowdown" for r in names) + " |",
                      "|---|" + "---|---|" * len(names)]
            for name, slowdowns in contention_rows:
                lines.append(f"| {name} | " + " | ".join(f"{slowdowns[r][0]:.3f} | {'**%.2fx**' % slowdowns[r][1] if r == 'Lathe' else '%.2fx' % slowdowns[r][1]}"
                                                        for r in names) + " |")
        with open(a.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")
    worse_under_load = [name for name, slow in contention_rows if slow["Lathe"][1] > slow["ORT"][1]]
    if worse_under_load:
        print(f"Lathe slowed more than ONNX Runtime under load on: {', '.join(worse_under_load)}")
    return 1 if any(r[1] is None or r[7] > 1e-4 for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
