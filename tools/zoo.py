"""The ONNX models Lathe is checked and benchmarked on, made on the fly in a work directory:
the light model zoo that ships inside the onnx package (its constant-fill weights made seeded
random), MobileNet v2 (tools/mobilenet_v2.py), the seed models of
../shared/tools/mkseedmodels.py, and a BERT-base encoder from token ids (where torch is installed). Used by tools/check-onnx-models.py and benchmarks/compare.py.
"""
import os, subprocess, sys

import numpy as np
import onnx
import onnx.numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def models(workdir, wanted=None):
    """The light zoo, MobileNet v2, the seed models and BERT-base, as (name, path); with
    `wanted` (names), only the groups that hold one of them are built."""
    def want(names):
        return wanted is None or any(n in wanted for n in names)
    light = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    found = []
    if os.path.isdir(light):
        files = [f for f in sorted(os.listdir(light)) if f.endswith(".onnx")]
        found += [(f[len("light_"):-len(".onnx")], randomize_weights(os.path.join(light, f), workdir))
                  for f in files if want([f[len("light_"):-len(".onnx")]])]
    else:
        print(f"note: {light} is missing; the light zoo is not checked")
    sys.path.insert(0, HERE)
    if want(["mobilenet_v2"]):
        import mobilenet_v2
        found.append(("mobilenet_v2", os.path.join(workdir, "mobilenet_v2.onnx")))
        mobilenet_v2.build(found[-1][1])
    maker = os.path.join(ROOT, "..", "shared", "tools", "mkseedmodels.py")
    if os.path.exists(maker) and want(SEED_MODELS):
        seeds = os.path.join(workdir, "seeds")
        os.makedirs(seeds, exist_ok=True)
        subprocess.run([sys.executable, maker, seeds], check=True, stdout=subprocess.DEVNULL)
        found += [(f[:-5], os.path.join(seeds, f)) for f in sorted(os.listdir(seeds)) if f.endswith(".onnx")]
    elif not os.path.exists(maker):
        print(f"note: {maker} is missing; the seed models are not checked")
    if want(["bert_base_seq128"]):
        found += bert_base(workdir)
    return found


# The models ../shared/tools/mkseedmodels.py writes.
SEED_MODELS = ["mlp_simple", "keras_cnn_b1", "keras_cnn_b64", "lstm_ts", "bert_layer"]


MODERN_MODELS = ["convnext_tiny", "mobilenet_v3_small", "efficientnet_b0", "regnetx_400mf", "vit_s16", "yolov8n", "resnet18_qdq"]


def modern(workdir, wanted=None):
    """Full-size ConvNeXt-Tiny, MobileNetV3-Small, EfficientNet-B0, RegNetX-400MF, ViT-S/16,
    YOLOv8n and a QDQ-quantized ResNet-18 (tools/mkbenchmodels.py: random weights, batch 1), or
    those of them in `wanted`, made once per work directory, for benchmarks/compare.py (the model
    set's small versions are what the tests check). Needs torch, torchvision and ultralytics."""
    names = [n for n in MODERN_MODELS if wanted is None or n in wanted]
    missing = [n for n in names if not os.path.exists(os.path.join(workdir, f"{n}.onnx"))]
    if missing:
        try:
            import torch, torchvision, ultralytics  # noqa: F401
        except ImportError:
            print("note: torch, torchvision or ultralytics is missing; the modern models are not checked")
            return []
        subprocess.run([sys.executable, os.path.join(HERE, "mkbenchmodels.py"), workdir, "--only", *missing], check=True, stdout=subprocess.DEVNULL)
    return [(n, os.path.join(workdir, f"{n}.onnx")) for n in names]


def bert_base(workdir):
    """A BERT-base encoder from token ids (tools/mktransformers.py --benchmark: transformers'
    BertModel from a configuration, random weights, sequence 128, batch 1): 440 MB, made once
    per work directory. Needs torch and transformers."""
    path = os.path.join(workdir, "bert_base_seq128.onnx")
    if not os.path.exists(path):
        try:
            import torch, transformers  # noqa: F401
        except ImportError:
            print("note: torch or transformers is missing; bert_base_seq128 is not checked")
            return []
        subprocess.run([sys.executable, os.path.join(HERE, "mktransformers.py"), workdir, "--benchmark"], check=True, stdout=subprocess.DEVNULL)
    return [("bert_base_seq128", path)]


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
