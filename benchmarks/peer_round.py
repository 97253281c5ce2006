#!/usr/bin/env python3
"""One timed round of a peer runtime on an ONNX model, in a process of its own, for compare.py:
every runtime's round then runs in a fresh process, as Lathe's (`lathe bench`) does. (A fresh
process on this shared machine draws its memory anew: in one run a model's rounds in fresh
processes varied by up to 2x, where a process kept for all rounds drew once.)

    peer_round.py ort|openvino MODEL.onnx THREADS SECONDS  ->  {"medianMs": ..., "minMs": ...}
"""
import json, statistics, sys, time

import numpy as np


def feeds(inputs):
    """Seeded inputs for (name, shape, numpy dtype) triples, a symbolic dimension taken as 1
    (`lathe` needs such a size given: --dim NAME=1): floats uniform in [0, 1), integers and bools
    0 or 1 (a token id of any vocabulary, a mask), as `lathe run` and `lathe bench` make them.
    compare.py checks the outputs on these, and every round runs on them."""
    rng = np.random.default_rng(0)
    values = {}
    for name, shape, dtype in inputs:
        size = [d if isinstance(d, int) else 1 for d in shape]
        floating = np.issubdtype(dtype, np.floating)
        values[name] = (rng.uniform(0, 1, size=size) if floating else rng.integers(0, 2, size=size)).astype(dtype)
    return values


def ort_dtype(type_string):
    """numpy's dtype of an ONNX Runtime input type such as 'tensor(int64)'."""
    name = type_string[len("tensor("):-1]
    return np.dtype({"float": "float32", "double": "float64", "float16": "float16", "bool": "bool"}.get(name, name))


def runner(kind, path, threads):
    if kind == "ort":
        import onnxruntime as ort
        ort.set_default_logger_severity(3)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        values = feeds([(i.name, i.shape, ort_dtype(i.type)) for i in session.get_inputs()])
        return lambda: session.run(None, values)
    import openvino as ov
    import onnx
    model = onnx.load(path, load_external_data=False)
    initializers = {t.name for t in model.graph.initializer}
    inputs = [(i.name, [d.dim_value if d.HasField("dim_value") else 1 for d in i.type.tensor_type.shape.dim],
               onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type))
              for i in model.graph.input if i.name not in initializers]
    compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    values = {i: v for i, v in enumerate(feeds(inputs).values())}
    return lambda: request.infer(values)


def main():
    kind, path, threads, budget = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    fn = runner(kind, path, threads)
    warm, end = 0, time.perf_counter() + budget / 10
    while warm < 2 or time.perf_counter() < end:
        fn()
        warm += 1
    times, end = [], time.perf_counter() + budget
    while len(times) < 3 or time.perf_counter() < end:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    print(json.dumps({"medianMs": statistics.median(times) * 1e3, "minMs": min(times) * 1e3}))


if __name__ == "__main__":
    main()
