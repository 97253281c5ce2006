"""Exports a small encoder-decoder segmentation network from PyTorch (random weights) whose
batch, height and width are symbolic, and whose decoder resizes with F.interpolate: bilinear
(half-pixel), nearest to a computed size, and bicubic with align_corners. ONNX Runtime's outputs
at two input sizes are stored beside it, so tests need neither torch nor onnxruntime:

    python3 tools/mksegmenter.py Tests/Data/segmenter

writes segmenter.onnx, segmenter.<size>.image.npy and segmenter.<size>.expected.npy for the
sizes 1x3x32x48 and 2x3x40x24. Needs torch (pip), onnx and onnxruntime.
"""
import os
import sys

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F


class Segmenter(torch.nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.down1 = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.down2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fuse = torch.nn.Conv2d(16 + 8, 8, 3, padding=1)
        self.head = torch.nn.Conv2d(8, classes, 1)
        self.refine = torch.nn.Conv2d(classes, classes, 3, padding=1)

    def forward(self, image):
        skip = F.relu(self.down1(image))
        deep = F.relu(self.down2(skip))
        up = F.interpolate(deep, size=skip.shape[2:], mode="bilinear", align_corners=False)
        fused = F.relu(self.fuse(torch.cat([up, skip], dim=1)))
        logits = F.interpolate(self.head(fused), size=image.shape[2:], mode="nearest")
        smooth = F.interpolate(logits, scale_factor=0.5, mode="bicubic", align_corners=True)
        return logits + F.interpolate(self.refine(smooth), size=image.shape[2:], mode="bilinear", align_corners=True)


def main(folder):
    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(0)
    model = Segmenter().eval()
    path = os.path.join(folder, "segmenter.onnx")
    with torch.no_grad():
        torch.onnx.export(model, (torch.rand(1, 3, 32, 48),), path, input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}}, opset_version=17, dynamo=False)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for shape in [(1, 3, 32, 48), (2, 3, 40, 24)]:
        name = "x".join(map(str, shape))
        image = rng.uniform(0, 1, size=shape).astype(np.float32)
        np.save(os.path.join(folder, f"segmenter.{name}.image.npy"), image)
        np.save(os.path.join(folder, f"segmenter.{name}.expected.npy"), session.run(None, {"image": image})[0])
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Tests/Data/segmenter")
