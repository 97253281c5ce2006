#!/usr/bin/env python3
"""Full-size modern architectures, for benchmarks/compare.py (too big to commit; made once per
work directory, in a few minutes): torchvision's ConvNeXt-Tiny, MobileNetV3-Small,
EfficientNet-B0 and RegNetX-400MF, a ViT-S/16 (torchvision's VisionTransformer at ViT-Small's
size), Ultralytics' YOLOv8n at 640x640, and a ResNet-18 quantized by ONNX Runtime's quantize_static in QDQ format (per-channel
int8 weights, uint8 activations), all at batch 1 with seeded random weights (nothing is
downloaded), exported as tools/mkmodelset.py exports:

    python3 tools/mkbenchmodels.py DIR [--only NAME ...]

writes DIR/<name>.onnx. Needs torch, torchvision, ultralytics (pip), onnx and onnxruntime.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mkmodelset import Spec, export_checked, images, perturb_constants, quantize_qdq, settle_batch_norms  # noqa: E402

NAMES = ["convnext_tiny", "mobilenet_v3_small", "efficientnet_b0", "regnetx_400mf", "vit_s16", "yolov8n", "resnet18_qdq"]


def image(seed, size=224):
    return images(np.random.default_rng(seed), (1, 3, size, size))


def spec(name):
    if name == "convnext_tiny":
        from torchvision.models import convnext_tiny
        return Spec(convnext_tiny(weights=None), ["image"], image(1), {}, ["logits"], "torchvision.models.convnext_tiny(weights=None)")
    if name == "mobilenet_v3_small":
        from torchvision.models import mobilenet_v3_small
        return Spec(mobilenet_v3_small(weights=None), ["image"], image(5), {}, ["logits"], "torchvision.models.mobilenet_v3_small(weights=None)")
    if name == "efficientnet_b0":
        from torchvision.models import efficientnet_b0
        return Spec(efficientnet_b0(weights=None), ["image"], image(6), {}, ["logits"], "torchvision.models.efficientnet_b0(weights=None)")
    if name == "regnetx_400mf":
        from torchvision.models import regnet_x_400mf
        return Spec(regnet_x_400mf(weights=None), ["image"], image(7), {}, ["logits"], "torchvision.models.regnet_x_400mf(weights=None)")
    if name == "vit_s16":
        from torchvision.models.vision_transformer import VisionTransformer
        m = VisionTransformer(image_size=224, patch_size=16, num_layers=12, num_heads=6, hidden_dim=384, mlp_dim=1536)
        return Spec(m, ["image"], image(2), {}, ["logits"], "VisionTransformer(224, 16, 12 layers, 6 heads, 384, 1536)")
    if name == "yolov8n":
        from ultralytics.nn.modules.head import Detect
        from ultralytics.nn.tasks import DetectionModel, yaml_model_load
        cfg = yaml_model_load("yolov8n.yaml")
        cfg["scale"] = "n"

        def for_export(m):
            m = m.fuse(verbose=False)
            for layer in m.modules():
                if isinstance(layer, Detect):
                    layer.export, layer.format = True, "onnx"
            return m
        runs = [{"images": r["image"]} for r in image(3, 640)]
        return Spec(DetectionModel(cfg, nc=80, verbose=False), ["images"], runs, {}, ["output0"], "DetectionModel(yolov8n.yaml).fuse()",
                    finish=for_export)
    if name == "resnet18":
        from torchvision.models import resnet18
        return Spec(resnet18(weights=None), ["image"], image(4), {}, ["logits"], "torchvision.models.resnet18(weights=None)")
    raise ValueError(name)


def build_float(name, path):
    torch.manual_seed(0)
    s = spec(name)
    perturb_constants(s.module, seed=1)
    settle_batch_norms(s.module, [torch.from_numpy(s.runs[-1][n]) for n in s.inputs])
    if s.finish is not None:
        s.module = s.finish(s.module).eval()
    export_checked(s, path)


def quantized(float_path, path):
    """ONNX Runtime's recipe for CNNs on CPUs: QDQ, per-channel int8 weights, uint8 activations,
    calibrated on 16 seeded random images."""
    from onnxruntime.quantization.shape_inference import quant_pre_process
    prepared = path + ".prep.onnx"
    quant_pre_process(float_path, prepared, skip_symbolic_shape=True)
    try:
        quantize_qdq(prepared, path, size=224, per_channel=True)
    finally:
        os.remove(prepared)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--only", nargs="+", choices=NAMES)
    args = parser.parse_args()
    os.makedirs(args.folder, exist_ok=True)
    for name in args.only or NAMES:
        path = os.path.join(args.folder, f"{name}.onnx")
        if name == "resnet18_qdq":
            float_path = os.path.join(args.folder, "resnet18.onnx")
            build_float("resnet18", float_path)
            quantized(float_path, path)
            os.remove(float_path)
        else:
            build_float(name, path)
        print(f"{name}: {os.path.getsize(path)} bytes", flush=True)


if __name__ == "__main__":
    main()
