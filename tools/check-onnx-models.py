#!/usr/bin/env python3
"""Checks that Lathe gives ONNX Runtime's numbers on real models.

For each model: the light model zoo that ships inside the onnx package
(onnx/backend/test/data/light, with its constant-fill weights made seeded random), MobileNet v2
(tools/mobilenet_v2.py, seeded random weights) and the seed models of ../shared/tools/mkseedmodels.py, it feeds
the same seeded random input to ONNX Runtime and to `lathe run`, and compares every output:
max |lathe - ort| / max |ort| must be at most 1e-4, and Lathe with and without its graph passes
(`lathe run --no-passes`) must agree to 1e-5. It also reads each model's memory plan
(`lathe inspect --json`): the arena must be at most 1.1x its lower bound and below the naive sum
(equal to it when there is one buffer).

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
TOLERANCE = 1e-4
PASSES_TOLERANCE = 1e-5
ARENA_OVER_BOUND = 1.1


def models(workdir):
    light = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    found = []
    if os.path.isdir(light):
        found += [(f[len("light_"):-len(".onnx")], randomize_weights(os.path.join(light, f), workdir))
                  for f in sorted(os.listdir(light)) if f.endswith(".onnx")]
    else:
        print(f"note: {light} is missing; the light zoo is not checked")
    sys.path.insert(0, HERE)
    import mobilenet_v2
    found.append(("mobilenet_v2", os.path.join(workdir, "mobilenet_v2.onnx")))
    mobilenet_v2.build(found[-1][1])
    maker = os.path.join(ROOT, "..", "shared", "tools", "mkseedmodels.py")
    if os.path.exists(maker):
        seeds = os.path.join(workdir, "seeds")
        os.makedirs(seeds, exist_ok=True)
        subprocess.run([sys.executable, maker, seeds], check=True, stdout=subprocess.DEVNULL)
        found += [(f[:-5], os.path.join(seeds, f)) for f in sorted(os.listdir(seeds)) if f.endswith(".onnx")]
    else:
        print(f"note: {maker} is missing; the seed models are not checked")
    return found


def randomize_weights(path, workdir):
    """The light zoo's weights are ConstantOfShape fills, which make every output trivial.
    This turns each fill into seeded random values so that every weight matters: U(0, 2) / fan-in
    for weights, which keeps activations in range through deep networks, and U(0.5, 1.5) for
    vectors (biases, BatchNorm statistics), which keeps variances away from 0. Otherwise the
    logits grow so large that softmax turns float rounding into visible differences."""
    model = onnx.load(path)
    init = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    rng = np.random.default_rng(1)
    changed = 0
    for node in model.graph.node:
        if node.op_type != "ConstantOfShape" or node.input[0] not in init:
            continue
        shape = [int(d) for d in init[node.input[0]]]
        if len(shape) > 1:
            value = (rng.uniform(0, 2, size=shape) / int(np.prod(shape[1:]))).astype(np.float32)
        else:
            value = rng.uniform(0.5, 1.5, size=shape).astype(np.float32)
        node.op_type = "Constant"
        del node.input[:]
        del node.attribute[:]
        node.attribute.append(onnx.helper.make_attribute("value", onnx.numpy_helper.from_array(value)))
        changed += 1
    # Softmax saturates on large logits, where it would hide differences: check the logits too.
    outputs = {o.name for o in model.graph.output}
    for node in model.graph.node:
        if node.op_type == "Softmax" and any(o in outputs for o in node.output) and node.input[0] not in outputs:
            model.graph.output.append(onnx.helper.make_tensor_value_info(node.input[0], onnx.TensorProto.FLOAT, None))
            changed += 1
    if changed == 0:
        return path
    out = os.path.join(workdir, os.path.basename(path))
    onnx.save(model, out)
    return out


def relative(got, want):
    """max |got - want| / max |want|: a relative error that does not blow up near zero."""
    return float(np.abs(got - want).max()) / max(float(np.abs(want).max()), 1e-30)


def safe(name):
    return "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name)


def check(name, path, lathe, workdir):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds, args = {}, []
    for i, inp in enumerate(session.get_inputs()):
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        feeds[inp.name] = rng.uniform(0, 1, size=shape).astype(np.float32)
        file = os.path.join(workdir, f"{name}_in{i}.npy")
        np.save(file, feeds[inp.name])
        args += ["--input", f"{inp.name}={file}"]
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
    # With a single intermediate buffer the arena can only equal the naive sum.
    below_naive = arena < naive if len(memory["buffers"]) > 1 else arena <= naive
    planned = arena <= ARENA_OVER_BOUND * bound and below_naive
    detail = (f"max |diff| / max |ort| = {worst:.2e}; with / without passes {passes:.1e}; arena / lower bound = {arena / max(bound, 1):.3f}, "
              f"arena / naive = {arena / max(naive, 1):.3f} ({seconds:.1f} s for compile and run)")
    return worst <= TOLERANCE and passes <= PASSES_TOLERANCE and planned, detail


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
        for name, path in models(workdir):
            if a.only and name not in a.only:
                continue
            ok, detail = check(name, path, a.lathe, workdir)
            failed += not ok
            print(f"{'PASS' if ok else 'FAIL'}  {name:16} {detail}", flush=True)
    print("all models match ONNX Runtime" if failed == 0 else f"{failed} model(s) differ from ONNX Runtime")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
