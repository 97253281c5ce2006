#!/usr/bin/env python3
"""Checks that Lathe gives ONNX Runtime's numbers on real models.

For each model: the light model zoo that ships inside the onnx package
(onnx/backend/test/data/light, with its constant-fill weights made seeded random), MobileNet v2
(tools/mobilenet_v2.py, seeded random weights) and the seed models of ../shared/tools/mkseedmodels.py, it feeds
the same seeded random input to ONNX Runtime and to `lathe run`, and compares every output:
max |lathe - ort| / max |ort| must be at most 1e-4, and Lathe with and without its graph passes
(`lathe run --no-passes`) must agree to 1e-5. It also reads each model's memory plan
(`lathe inspect --json`): the arena must be at most 1.1x its lower bound and below the naive sum
wherever buffers could share. Then the model set of tools/mkmodelset.py (Tests/Data/modelset: 16
architectures from torchvision, transformers, Ultralytics and ONNX Runtime's quantizer) runs
under `lathe run` at each model's input sizes, against the ONNX Runtime outputs stored beside it.
Last, Lathe's own models go the other way: `lathe export` writes each built-in model of the DSL
(the MNIST CNN with weights `lathe train` learned on the test subset) as ONNX, and ONNX Runtime
must give Lathe's outputs to 1e-5.

    tools/check-onnx-models.py [--lathe .build/release/lathe] [--only NAME ...]

Needs Python's onnx and onnxruntime (pip install onnx onnxruntime numpy); without them it
says so and exits 0, so that a machine without PyPI still runs the rest of the checks.
"""
import argparse, json, os, subprocess, sys, tempfile, time

try:
    import numpy as np
    import onnx
    import onnx.numpy_helper
    import onnxruntime as ort
except ImportError as e:
    print(f"SKIPPED: {e.name} is not installed (pip install onnx onnxruntime numpy)")
    sys.exit(0)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from zoo import models, relative, safe  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from peer_round import feeds as seeded_feeds, ort_dtype  # noqa: E402  (the inputs compare.py checks and times on)
MODELSET = os.path.join(ROOT, "Tests", "Data", "modelset")
TOLERANCE = 1e-4
PASSES_TOLERANCE = 1e-5
ARENA_OVER_BOUND = 1.1


def inputs_for(session, workdir, name):
    """The seeded inputs of the session's model (floats uniform in [0, 1); token ids and masks 0
    or 1, valid for any vocabulary), and `lathe run`'s --input arguments of them, as .npy files."""
    feeds, args = seeded_feeds([(i.name, i.shape, ort_dtype(i.type)) for i in session.get_inputs()]), []
    for i, inp in enumerate(session.get_inputs()):
        file = os.path.join(workdir, f"{name}_in{i}.npy")
        np.save(file, feeds[inp.name])
        args += ["--input", f"{inp.name}={file}"]
    return feeds, args


def check(name, path, lathe, workdir):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds, args = inputs_for(session, workdir, name)
    expected = session.run(None, feeds)
    outdir = os.path.join(workdir, f"{name}_out")
    start = time.time()
    run = subprocess.run([lathe, "run", path, "--output-dir", outdir] + args, capture_output=True, text=True)
    seconds = time.time() - start
    if run.returncode != 0:
        return False, f"lathe failed: {(run.stderr or run.stdout).strip().splitlines()[-1][:300]}"
    worst = 0.0
    for out, want in zip(session.get_outputs(), expected):
        got = np.load(os.path.join(outdir, safe(out.name) + ".npy"))
        if got.shape != want.shape:
            return False, f"output {out.name}: shape {got.shape}, ONNX Runtime {want.shape}"
        worst = max(worst, relative(got, want))
    # The graph passes must not change the numbers beyond float rounding.
    plain = os.path.join(workdir, f"{name}_plain")
    run = subprocess.run([lathe, "run", path, "--no-passes", "--output-dir", plain] + args, capture_output=True, text=True)
    if run.returncode != 0:
        return False, f"lathe --no-passes failed: {(run.stderr or run.stdout).strip().splitlines()[-1][:300]}"
    passes = max(relative(np.load(os.path.join(outdir, safe(o.name) + ".npy")), np.load(os.path.join(plain, safe(o.name) + ".npy")))
                 for o in session.get_outputs())
    inspect = subprocess.run([lathe, "inspect", path, "--json"], capture_output=True, text=True)
    if inspect.returncode != 0:
        return False, f"lathe inspect failed: {(inspect.stderr or inspect.stdout).strip()[:300]}"
    memory = json.loads(inspect.stdout)["memory"]
    arena, bound, naive = memory["arenaBytes"], memory["lowerBoundBytes"], memory["naiveBytes"]
    # Below the naive sum wherever buffers could share at all (when all of them live at once,
    # the lower bound is the naive sum, and so is the arena).
    below_naive = arena < naive if bound < naive else arena <= naive
    planned = arena <= ARENA_OVER_BOUND * bound and below_naive
    detail = (f"max |diff| / max |ort| = {worst:.2e}; with / without passes {passes:.1e}; arena / lower bound = {arena / max(bound, 1):.3f}, "
              f"arena / naive = {arena / max(naive, 1):.3f} ({seconds:.1f} s for compile and run)")
    return worst <= TOLERANCE and passes <= PASSES_TOLERANCE and planned, detail


def check_modelset(entry, lathe, workdir):
    """A model of tools/mkmodelset.py's set under `lathe run`, at each of its input sizes (given
    by the --input files alone, no --dim), against ONNX Runtime's stored outputs: within the
    model's tolerance of the largest output, within one quantization step for a quantized
    output, integers exactly."""
    worst, details = 0.0, []
    for k, run in enumerate(entry["runs"]):
        outdir = os.path.join(workdir, f"set_{entry['name']}_{k}")
        args = [lathe, "run", os.path.join(MODELSET, entry["file"]), "--threads", "2", "--output-dir", outdir]
        for name, file in run["inputs"].items():
            args += ["--input", f"{name}={os.path.join(MODELSET, file)}"]
        result = subprocess.run(args, capture_output=True, text=True)
        if result.returncode != 0:
            return False, f"run {k}: lathe failed: {(result.stderr or result.stdout).strip().splitlines()[-1][:300]}"
        for out in run["outputs"]:
            want, got = np.load(os.path.join(MODELSET, out["file"])), np.load(os.path.join(outdir, safe(out["name"]) + ".npy"))
            if got.shape != want.shape:
                return False, f"run {k}: output {out['name']} shaped {got.shape}, ONNX Runtime {want.shape}"
            if want.dtype.kind != "f":
                if not np.array_equal(got, want):
                    return False, f"run {k}: integer output {out['name']} differs"
            elif out["step"] is not None:
                steps = float(np.max(np.abs(got.astype(np.float64) - want))) / out["step"] if want.size else 0.0
                if steps > 1.001:
                    return False, f"run {k}: output {out['name']} {steps:.2f} quantization steps from ONNX Runtime's"
            else:
                worst = max(worst, relative(got, want))
        details.append("x".join(str(d) for d in np.load(os.path.join(MODELSET, next(iter(run["inputs"].values())))).shape))
    return worst <= entry["tolerance"], f"max |diff| / max |ort| = {worst:.2e} at input sizes {', '.join(details)}"


# The built-in models `lathe export` writes (all of them).
EXPORTED = ["simple-nn", "mnist-mlp", "mnist-cnn", "lstm-timeseries", "transformer-encoder", "conv-autoencoder", "dcgan-generator", "dcgan-discriminator"]
EXPORT_TOLERANCE = 1e-5


def check_export(name, lathe, workdir, weights=None):
    """A built-in model (with `weights`) exported to ONNX: ONNX Runtime on the file against
    `lathe run` on the model itself, fed the same seeded input."""
    path = os.path.join(workdir, f"export_{name}.onnx")
    extra = ["--weights", weights] if weights else []
    result = subprocess.run([lathe, "export", name, "-o", path] + extra, capture_output=True, text=True)
    if result.returncode != 0:
        return False, f"lathe export failed: {(result.stderr or result.stdout).strip().splitlines()[-1][:300]}"
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds, args = inputs_for(session, workdir, f"export_{name}")
    outdir = os.path.join(workdir, f"export_{name}_out")
    run = subprocess.run([lathe, "run", name, "--output-dir", outdir] + extra + args, capture_output=True, text=True)
    if run.returncode != 0:
        return False, f"lathe run failed: {(run.stderr or run.stdout).strip().splitlines()[-1][:300]}"
    worst = max(relative(np.load(os.path.join(outdir, safe(o.name) + ".npy")), want) for o, want in zip(session.get_outputs(), session.run(None, feeds)))
    return worst <= EXPORT_TOLERANCE, f"exported: ONNX Runtime against lathe run, max |diff| / max |ort| = {worst:.2e}"


def trained_weights(lathe, workdir):
    """The MNIST CNN's weights after an epoch on the test subset of MNIST."""
    weights = os.path.join(workdir, "mnist-cnn.safetensors")
    subset = os.path.join(ROOT, "Tests", "Data", "mnist-subset")
    subprocess.run([lathe, "train", "mnist-cnn", "--data", subset, "--epochs", "1", "--limit", "512", "--json", "--save", weights],
                   check=True, capture_output=True)
    return weights


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lathe", default=os.path.join(ROOT, ".build", "release", "lathe"))
    parser.add_argument("--only", nargs="*")
    a = parser.parse_args()
    if not os.path.exists(a.lathe):
        print(f"no lathe at {a.lathe}: run swift build -c release first")
        return 2
    failed = 0
    with tempfile.TemporaryDirectory() as workdir:
        for name, path in models(workdir, set(a.only) if a.only else None):
            if a.only and name not in a.only:
                continue
            ok, detail = check(name, path, a.lathe, workdir)
            failed += not ok
            print(f"{'PASS' if ok else 'FAIL'}  {name:16} {detail}", flush=True)
        with open(os.path.join(MODELSET, "manifest.json")) as f:
            for entry in json.load(f):
                if a.only and entry["name"] not in a.only:
                    continue
                ok, detail = check_modelset(entry, a.lathe, workdir)
                failed += not ok
                print(f"{'PASS' if ok else 'FAIL'}  {entry['name']:16} {detail}", flush=True)
        for name in EXPORTED:
            if a.only and name not in a.only:
                continue
            ok, detail = check_export(name, a.lathe, workdir, trained_weights(a.lathe, workdir) if name == "mnist-cnn" else None)
            failed += not ok
            print(f"{'PASS' if ok else 'FAIL'}  {name:16} {detail}", flush=True)
    print("all models match ONNX Runtime" if failed == 0 else f"{failed} model(s) differ from ONNX Runtime")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
