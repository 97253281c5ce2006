"""Builds a set of 16 real architectures from their public model code (torchvision, transformers,
ultralytics, and ONNX Runtime's quantizer), each made small through its constructor's
configuration and given seeded random weights (nothing is downloaded), exports each to ONNX,
and stores ONNX Runtime's outputs on seeded inputs beside it, so that tests need neither torch
nor onnxruntime:

    python3 tools/mkmodelset.py Tests/Data/modelset                  # all of them
    python3 tools/mkmodelset.py Tests/Data/modelset --only vit t5    # some of them

For each model it writes `<name>.onnx` (weights inline), and for each of its runs k (two input
sizes where the model has symbolic dimensions, else one) the inputs `<name>.<k>.<input>.npy`
and ONNX Runtime's outputs `<name>.<k>.out<j>.npy`; and `manifest.json`, a list with, for each
model, its name, file, source (the constructor call), exporter ("dynamo" or "torchscript"),
opset, tolerance (relative to the largest output magnitude), whether it is quantized, and its
runs: {"inputs": {input: file}, "outputs": [{"name", "file", "shape", "dtype", "step"}]}, where
step is the quantization step of an output that comes out of a DequantizeLinear, else null.
With --only, the manifest keeps the other models' entries from the existing file.

Each model is exported with the exporter a user gets by default, torch.onnx.export(dynamo=True),
and with the TorchScript exporter (dynamo=False) where that fails or where ONNX Runtime does not
agree with torch on the result. Needs torch, torchvision, transformers, ultralytics (pip),
onnx and onnxruntime.
"""
import argparse
import collections
import contextlib
import inspect
import json
import os
import re
import sys
import tempfile
import warnings
from functools import partial

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
import torch
from torch import nn

FLOAT_TOLERANCE = 1e-4
MODELS = {}


def model(fn):
    """Registers a model builder under its function's name; the manifest keeps this order."""
    MODELS[fn.__name__] = fn
    return fn


class Spec:
    """A model to export: the module, its input names in call order, the runs (dicts of input
    name to array; the last one is also the export example, so it should have no size-1
    symbolic dimension, which the dynamo exporter would specialize), the symbolic dimensions
    ({input: {axis: name}}), the output names, the constructor call for the manifest, and what
    to do to the module once its weights are set (finish)."""
    def __init__(self, module, inputs, runs, dynamic, outputs, source, finish=None):
        self.module, self.inputs, self.runs, self.dynamic = module.eval(), inputs, runs, dynamic
        self.outputs, self.source, self.finish = outputs, source, finish


def perturb_constants(module, seed):
    """Constructors start norms at weight 1 and bias 0, biases and BatchNorm statistics at 0 and
    1, and ConvNeXt's layer scale at 1e-6: a compiler that dropped any of them would still get
    the same output. Every float parameter that is one value throughout (and every BatchNorm's
    running statistics) gets seeded noise of about its own size instead, so each one matters."""
    g = torch.Generator().manual_seed(seed)
    tensors = [p for p in module.parameters()]
    tensors += [b for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                for b in (m.running_mean, m.running_var) if b is not None]
    with torch.no_grad():
        for t in tensors:
            if t.is_floating_point() and t.numel() > 0 and bool((t == t.flatten()[0]).all()):
                v = float(t.flatten()[0])
                # 1 (scales, variances) becomes U(0.505, 1.495), 0 (biases, means) U(-0.045, 0.045).
                t.add_((abs(v) + 0.1) * 0.9 * (torch.rand(t.shape, generator=g) - 0.5))


def settle_batch_norms(module, inputs):
    """With random weights, a BatchNorm's running statistics (mean 0, variance 1) have nothing to
    do with what reaches it, so activations shrink or grow layer by layer until the output hardly
    depends on the input. A trained network's statistics are those of its activations: each
    BatchNorm takes the mean and variance of its input here, in one pass over the example (one
    that sees a single value per channel, as in SSD's 1x1 maps, keeps its statistics, or its
    output would not depend on the input). A channel far quieter than the others is not blown
    up to unit variance, which would amplify float rounding: its variance is at least a tenth of
    the layer's mean variance."""
    def settle(norm, args):
        x = args[0].detach().transpose(0, 1).reshape(norm.num_features, -1).double()
        if x.shape[1] > 1:
            var = x.var(1)
            norm.running_mean.copy_(x.mean(1))
            norm.running_var.copy_(var.clamp(min=0.1 * float(var.mean())))
    hooks = [m.register_forward_pre_hook(settle) for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        module(*inputs)
    for hook in hooks:
        hook.remove()


def images(rng, *shapes):
    return [{"image": rng.uniform(0, 1, size=s).astype(np.float32)} for s in shapes]


def tokens(rng, vocab, batch, length, masked=False):
    """Token ids in [0, vocab) and a mask of ones; with masked, the last token of the second row
    is padding, so that the mask has to be applied."""
    ids = rng.integers(0, vocab, size=(batch, length), dtype=np.int64)
    mask = np.ones((batch, length), dtype=np.int64)
    if masked:
        mask[1, -1] = 0
    return ids, mask


# Image classifiers: symbolic batch.

@model
def mobilenet_v3():
    from torchvision.models.mobilenetv3 import MobileNetV3, _mobilenet_v3_conf
    settings, last_channel = _mobilenet_v3_conf("mobilenet_v3_small", width_mult=0.5, reduced_tail=True)
    m = MobileNetV3(settings, last_channel, num_classes=10)
    return Spec(m, ["image"], images(np.random.default_rng(1), (1, 3, 64, 64), (2, 3, 64, 64)), {"image": {0: "batch"}}, ["logits"],
                "MobileNetV3(*_mobilenet_v3_conf('mobilenet_v3_small', width_mult=0.5, reduced_tail=True), num_classes=10)")


@model
def efficientnet():
    from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf
    settings, last_channel = _efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.34)
    m = EfficientNet(settings, dropout=0.2, num_classes=10, last_channel=last_channel)
    return Spec(m, ["image"], images(np.random.default_rng(2), (1, 3, 64, 64), (2, 3, 64, 64)), {"image": {0: "batch"}}, ["logits"],
                "EfficientNet(*_efficientnet_conf('efficientnet_b0', width_mult=0.25, depth_mult=0.34), dropout=0.2, num_classes=10)")


@model
def convnext():
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt
    blocks = [CNBlockConfig(16, 32, 2), CNBlockConfig(32, 64, 2), CNBlockConfig(64, None, 2)]
    m = ConvNeXt(blocks, stochastic_depth_prob=0.0, num_classes=10)
    return Spec(m, ["image"], images(np.random.default_rng(3), (1, 3, 64, 64), (2, 3, 64, 64)), {"image": {0: "batch"}}, ["logits"],
                "ConvNeXt([CNBlockConfig(16, 32, 2), CNBlockConfig(32, 64, 2), CNBlockConfig(64, None, 2)], num_classes=10)")


@model
def regnet():
    from torchvision.models.regnet import BlockParams, RegNet
    # regnet_y_400mf's recipe (depth 16, w_0 48, w_a 27.89, w_m 2.09, groups of 8, squeeze-excitation) made narrow and shallow.
    params = BlockParams.from_init_params(depth=6, w_0=16, w_a=8.0, w_m=2.0, group_width=8, se_ratio=0.25)
    m = RegNet(params, num_classes=10, stem_width=16)
    return Spec(m, ["image"], images(np.random.default_rng(4), (1, 3, 64, 64), (2, 3, 64, 64)), {"image": {0: "batch"}}, ["logits"],
                "RegNet(BlockParams.from_init_params(depth=6, w_0=16, w_a=8.0, w_m=2.0, group_width=8, se_ratio=0.25), num_classes=10, stem_width=16)")


@model
def vit():
    from torchvision.models.vision_transformer import VisionTransformer
    m = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64, num_classes=10)
    return Spec(m, ["image"], images(np.random.default_rng(5), (1, 3, 32, 32), (2, 3, 32, 32)), {"image": {0: "batch"}}, ["logits"],
                "VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64, num_classes=10)")


@model
def swin():
    from torchvision.models.swin_transformer import SwinTransformer
    # 64x64 images: 16x16 patches, then 8x8 and 4x4; windows of 4 shift in the first two stages.
    m = SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2, 2], num_heads=[2, 4, 8], window_size=[4, 4],
                        stochastic_depth_prob=0.0, num_classes=10)
    return Spec(m, ["image"], images(np.random.default_rng(6), (1, 3, 64, 64), (2, 3, 64, 64)), {"image": {0: "batch"}}, ["logits"],
                "SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2, 2], num_heads=[2, 4, 8], window_size=[4, 4], num_classes=10)")


# Detection and segmentation: symbolic height and width.

class Detections(nn.Module):
    """torchvision's detectors take a list of images and give a list of dicts; this takes one
    image [3, H, W] and gives its boxes [N, 4], scores [N] and labels [N]."""
    def __init__(self, detector):
        super().__init__()
        self.detector = detector

    def forward(self, image):
        found = self.detector([image])[0]
        return found["boxes"], found["scores"], found["labels"]


@model
def ssd():
    from torchvision.models import mobilenet_v3_large
    from torchvision.models.detection import _utils as det_utils
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.ssdlite import SSDLiteFeatureExtractorMobileNet, SSDLiteHead, _normal_init
    # ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None) step by step, because it
    # fixes the width (13 MB) and the size: here a quarter of the width and 128x128 inside.
    norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
    backbone = mobilenet_v3_large(weights=None, norm_layer=norm, reduced_tail=True, width_mult=0.25)
    _normal_init(backbone)
    features = backbone.features
    c4 = [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)][-1]
    extractor = SSDLiteFeatureExtractorMobileNet(features, c4, norm, width_mult=0.25)
    size = (128, 128)
    anchors = DefaultBoxGenerator([[2, 3] for _ in range(6)], min_ratio=0.2, max_ratio=0.95)
    out_channels = det_utils.retrieve_out_channels(extractor, size)
    head = SSDLiteHead(out_channels, anchors.num_anchors_per_location(), 4, norm)
    # Ten detections, not 300: random weights give many near-equal scores, and the order of the
    # detections must not hang on float rounding (here consecutive scores differ by > 2e-4).
    detector = SSD(extractor, anchors, size, 4, head=head, score_thresh=0.001, nms_thresh=0.55, detections_per_img=10,
                   topk_candidates=100, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    rng = np.random.default_rng(7)
    return Spec(Detections(detector), ["image"], images(rng, (3, 96, 128), (3, 120, 100)), {"image": {1: "height", 2: "width"}},
                ["boxes", "scores", "labels"],
                "SSD(SSDLiteFeatureExtractorMobileNet(mobilenet_v3_large(width_mult=0.25, reduced_tail=True).features, c4, norm, width_mult=0.25), "
                "DefaultBoxGenerator([[2, 3]] * 6, 0.2, 0.95), (128, 128), 4, head=SSDLiteHead(...), detections_per_img=10, topk_candidates=100)")


class OutOnly(nn.Module):
    """torchvision's segmentation models give a dict; this gives its "out" alone."""
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        return self.net(image)["out"]


@model
def deeplab():
    from torchvision.models import mobilenet_v3_large
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabV3
    # deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None) at a quarter of the width
    # (and the last stage halved). Its DeepLabHead is ASPP and a 3x3 convolution at a fixed 256
    # channels (11 MB), so the same layers are built here at 32, with atrous rates that fit the
    # 4x4 to 7x7 feature maps (rates of 12 and more would see nothing but padding).
    features = mobilenet_v3_large(weights=None, dilated=True, width_mult=0.25, reduced_tail=True).features
    out = len(features) - 1
    body = IntermediateLayerGetter(features, return_layers={str(out): "out"})
    head = nn.Sequential(ASPP(features[out].out_channels, [2, 4, 6], out_channels=32), nn.Conv2d(32, 32, 3, padding=1, bias=False),
                         nn.BatchNorm2d(32), nn.ReLU(), nn.Conv2d(32, 5, 1))
    rng = np.random.default_rng(8)
    return Spec(OutOnly(DeepLabV3(body, head)), ["image"], images(rng, (1, 3, 64, 64), (2, 3, 72, 100)),
                {"image": {0: "batch", 2: "height", 3: "width"}}, ["out"],
                "DeepLabV3(IntermediateLayerGetter(mobilenet_v3_large(dilated=True, width_mult=0.25, reduced_tail=True).features), "
                "Sequential(ASPP(c, [2, 4, 6], out_channels=32), Conv2d(32, 32, 3), BatchNorm2d, ReLU, Conv2d(32, 5, 1)))")


@model
def yolo():
    from ultralytics.nn.modules.head import Detect
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load
    # yolov8.yaml (shipped inside the package) at 1/16 of the width ('n' is 1/4). YOLO11's C2PSA
    # needs at least 128 channels there for one attention head, which makes it over 3 MB.
    cfg = yaml_model_load("yolov8n.yaml")
    cfg["scales"], cfg["scale"] = {"t": [0.33, 0.0625, 1024]}, "t"
    m = DetectionModel(cfg, nc=4, verbose=False)

    def for_export(m):
        # What ultralytics' own ONNX export does: fold BatchNorm into the convolutions, and make
        # the head give only its decoded boxes and class scores, with anchors from each input's size.
        m = m.fuse(verbose=False)
        for layer in m.modules():
            if isinstance(layer, Detect):
                layer.export, layer.dynamic, layer.format = True, True, "onnx"
        return m
    rng = np.random.default_rng(9)
    return Spec(m, ["images"], [{"images": r["image"]} for r in images(rng, (1, 3, 64, 64), (2, 3, 96, 128))],
                {"images": {0: "batch", 2: "height", 3: "width"}}, ["output0"],
                "DetectionModel(yolov8.yaml with scales {'t': [0.33, 0.0625, 1024]}, nc=4).fuse(), Detect.export=True",
                finish=for_export)


# Transformers: symbolic batch and sequence.

class FirstOutput(nn.Module):
    """A transformers model called with keyword arguments, giving its first output (logits or
    last hidden state)."""
    def __init__(self, net, names):
        super().__init__()
        self.net, self.names = net, names

    def forward(self, *args):
        return self.net(**dict(zip(self.names, args)), return_dict=True)[0]


@model
def t5():
    import transformers
    config = transformers.T5Config(vocab_size=96, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
                                   relative_attention_num_buckets=8, relative_attention_max_distance=16, use_cache=False,
                                   decoder_start_token_id=0)
    torch.manual_seed(0)
    m = transformers.T5ForConditionalGeneration(config)
    names = ["input_ids", "attention_mask", "decoder_input_ids"]
    rng = np.random.default_rng(10)
    runs = []
    for batch, length, decoded in [(1, 7, 3), (2, 12, 5)]:
        ids, mask = tokens(rng, 96, batch, length, masked=batch > 1)
        runs.append({"input_ids": ids, "attention_mask": mask, "decoder_input_ids": tokens(rng, 96, batch, decoded)[0]})
    dynamic = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
               "decoder_input_ids": {0: "batch", 1: "decoder_sequence"}}
    return Spec(FirstOutput(m, names), names, runs, dynamic, ["logits"],
                "T5ForConditionalGeneration(T5Config(vocab_size=96, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, "
                "relative_attention_num_buckets=8, relative_attention_max_distance=16))")


@model
def distilbert():
    import transformers
    config = transformers.DistilBertConfig(vocab_size=96, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=32,
                                           num_labels=3)
    torch.manual_seed(0)
    m = transformers.DistilBertForSequenceClassification(config)
    names = ["input_ids", "attention_mask"]
    rng = np.random.default_rng(11)
    runs = [dict(zip(names, tokens(rng, 96, batch, length, masked=batch > 1))) for batch, length in [(1, 8), (2, 13)]]
    dynamic = {n: {0: "batch", 1: "sequence"} for n in names}
    return Spec(FirstOutput(m, names), names, runs, dynamic, ["logits"],
                "DistilBertForSequenceClassification(DistilBertConfig(vocab_size=96, dim=32, n_layers=2, n_heads=4, hidden_dim=64, "
                "max_position_embeddings=32, num_labels=3))")


@model
def whisper_encoder():
    import transformers
    from transformers.models.whisper.modeling_whisper import WhisperEncoder
    config = transformers.WhisperConfig(num_mel_bins=16, d_model=32, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=64,
                                        decoder_layers=1, decoder_attention_heads=4, decoder_ffn_dim=64, max_source_positions=24,
                                        vocab_size=96, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
                                        begin_suppress_tokens=None)
    torch.manual_seed(0)
    m = WhisperEncoder(config)
    # The encoder insists on 2 * max_source_positions frames (it raises otherwise), so only the batch is symbolic.
    rng = np.random.default_rng(12)
    runs = [{"input_features": rng.standard_normal((b, 16, 48)).astype(np.float32)} for b in (1, 2)]
    return Spec(FirstOutput(m, ["input_features"]), ["input_features"], runs, {"input_features": {0: "batch"}}, ["last_hidden_state"],
                "WhisperEncoder(WhisperConfig(num_mel_bins=16, d_model=32, encoder_layers=2, encoder_attention_heads=4, "
                "encoder_ffn_dim=64, max_source_positions=24))")


@model
def wav2vec2():
    import transformers
    config = transformers.Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                         conv_dim=(16, 16, 16), conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3),
                                         num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, vocab_size=32)
    torch.manual_seed(0)
    m = transformers.Wav2Vec2Model(config)
    rng = np.random.default_rng(13)
    runs = [{"input_values": rng.standard_normal((b, n)).astype(np.float32)} for b, n in [(1, 800), (2, 1203)]]
    return Spec(FirstOutput(m, ["input_values"]), ["input_values"], runs, {"input_values": {0: "batch", 1: "samples"}},
                ["last_hidden_state"],
                "Wav2Vec2Model(Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, "
                "conv_dim=(16, 16, 16), conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3), num_conv_pos_embeddings=16, "
                "num_conv_pos_embedding_groups=4))")


class CRNN(nn.Module):
    """A CRNN text-line recognizer (Shi et al. 2015, as in most OCR repositories): convolutions
    and poolings take a 32-high grey line image to one row of features per 4 columns, a
    two-layer bidirectional GRU reads them, and a linear layer gives CTC log-probabilities
    [time, batch, classes]."""
    def __init__(self, classes=20, hidden=32):
        super().__init__()

        def block(i, o):
            return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]
        self.features = nn.Sequential(*block(1, 16), nn.MaxPool2d(2), *block(16, 32), nn.MaxPool2d(2),
                                      *block(32, 48), nn.MaxPool2d((2, 1)), *block(48, 64), nn.MaxPool2d((4, 1)))
        self.rnn = nn.GRU(64, hidden, num_layers=2, bidirectional=True)
        self.head = nn.Linear(2 * hidden, classes)

    def forward(self, image):
        columns = self.features(image).squeeze(2).permute(2, 0, 1)
        out, _ = self.rnn(columns)
        return self.head(out).log_softmax(-1)


@model
def crnn_gru():
    rng = np.random.default_rng(14)
    return Spec(CRNN(), ["image"], images(rng, (1, 1, 32, 64), (2, 1, 32, 100)), {"image": {0: "batch", 3: "width"}}, ["log_probs"],
                "CRNN(classes=20, hidden=32): Conv-BN-ReLU-MaxPool x4, GRU(64, 32, num_layers=2, bidirectional=True), Linear(64, 20)")


# Quantized by ONNX Runtime from the float models above: name -> the float model it starts from.
QUANTIZED = {"dynamic_quant": "distilbert", "qdq": "mobilenet_v3"}


def quantize(name, base, float_path, path):
    """ONNX Runtime's documented recipe: quant_pre_process (shape inference and standard-op
    optimizations), then quantize_dynamic (int8 weights, MatMulInteger on activations quantized
    at run time) or quantize_static in QDQ format (uint8 activations, int8 weights, per tensor),
    calibrated on seeded random images (the base is an image model). Returns the source string."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process
    prepared = path + ".prep.onnx"
    # Its symbolic shape inference gives up on the dynamo exporter's shape arithmetic; ONNX's own
    # shape inference, which it also runs, is enough for quantizing.
    quant_pre_process(float_path, prepared, skip_symbolic_shape=True)
    try:
        if name == "dynamic_quant":
            quantize_dynamic(prepared, path, weight_type=QuantType.QInt8)
            return f"quantize_dynamic(quant_pre_process({base}.onnx, skip_symbolic_shape=True), weight_type=QuantType.QInt8)"

        quantize_qdq(prepared, path, size=64, per_channel=False)
        return (f"quantize_static(quant_pre_process({base}.onnx, skip_symbolic_shape=True), 16 random images, quant_format=QuantFormat.QDQ, "
                "per_channel=False, activation_type=QUInt8, weight_type=QInt8)")
    finally:
        os.remove(prepared)


def quantize_qdq(prepared, path, size, per_channel):
    """quantize_static in QDQ format (uint8 activations, int8 weights, per tensor or per
    channel), calibrated on 16 seeded random size x size images fed as "image"."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(100)
            self.feeds = iter([{"image": rng.uniform(0, 1, size=(1, 3, size, size)).astype(np.float32)} for _ in range(16)])

        def get_next(self):
            return next(self.feeds, None)
    quantize_static(prepared, path, Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


@contextlib.contextmanager
def quiet():
    """Sends what the exporters print (a failed torch.export prints its whole graph) to a
    scratch file, at the level of file descriptors, since some of it comes from C++."""
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sys.stdout.flush(), sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
        os.dup2(sink.fileno(), 1), os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])


def export(spec, path, exporter):
    example = tuple(torch.from_numpy(spec.runs[-1][n]) for n in spec.inputs)
    with torch.no_grad(), quiet():
        if exporter == "dynamo":
            # Shapes by position, with names as in dynamic_axes; those that go to a forward's *args
            # are one tuple there.
            shapes = tuple(spec.dynamic.get(n) for n in spec.inputs)
            named = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in inspect.signature(spec.module.forward).parameters.values())
            if named < len(shapes):
                shapes = shapes[:named] + (shapes[named:],)
            torch.onnx.export(spec.module, example, path, input_names=spec.inputs, output_names=spec.outputs,
                              dynamic_shapes=shapes, dynamo=True, external_data=False)
        else:
            torch.onnx.export(spec.module, example, path, input_names=spec.inputs, output_names=spec.outputs,
                              dynamic_axes=spec.dynamic, dynamo=False, opset_version=17, do_constant_folding=True)
    # One self-contained file whatever the exporter chose: weights inline, no .data beside it.
    # The dynamo exporter gives each node its Python stack trace and FX node as metadata: this
    # machine's paths, and a third of the file. Only the short module path (namespace) is kept.
    proto = onnx.load(path, load_external_data=True)
    for node in all_nodes(proto.graph):
        kept = [p for p in node.metadata_props if p.key == "namespace"]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    for extra in [f for f in os.listdir(os.path.dirname(path)) if f.startswith(os.path.basename(path) + ".")]:
        os.remove(os.path.join(os.path.dirname(path), extra))
    onnx.save(proto, path, save_as_external_data=False)


def torch_outputs(spec, run):
    with torch.no_grad():
        out = spec.module(*[torch.from_numpy(run[n]) for n in spec.inputs])
    return [o.numpy() for o in (out if isinstance(out, (tuple, list)) else [out])]


def relative(a, b):
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    return float(np.abs(a.astype(np.float64) - b).max() / max(np.abs(b).max(), 1e-30))


def run_ort(path, runs):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return [session.run(None, run) for run in runs], [o.name for o in session.get_outputs()]


def export_checked(spec, path):
    """Exports with the first exporter whose model ONNX Runtime runs at every run's sizes and
    agrees with torch on (the dynamo exporter can specialize a dimension, or trace a
    data-dependent branch one way); returns the exporter's name."""
    failures = []
    for exporter in ["dynamo", "torchscript"]:
        try:
            export(spec, path, exporter)
            results, _ = run_ort(path, spec.runs)
            errors = [relative(o, t) for run, outs in zip(spec.runs, results) for o, t in zip(outs, torch_outputs(spec, run))]
            if max(errors) > 1e-3:
                raise RuntimeError(f"ONNX Runtime differs from torch by {max(errors):.2g} (relative)")
            print(f"  {exporter}: ONNX Runtime agrees with torch within {max(errors):.2g} (relative)")
            return exporter
        except Exception as e:
            cause = e.__cause__ or e  # torch.onnx wraps torch.export's error in a generic one
            first = (str(cause).strip().splitlines() or [""])[0]
            failures.append(f"{exporter}: {type(cause).__name__}: {first[:300]}")
            print(f"  {exporter} export failed: {failures[-1]}")
    raise RuntimeError("; ".join(failures))


def all_nodes(graph):
    """The graph's nodes and those of its subgraphs (If and Loop bodies)."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for sub in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                yield from all_nodes(sub)


def sanitize(name):
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def output_steps(proto):
    """The quantization step of each graph output that a DequantizeLinear with a scalar scale
    makes, else None."""
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    producer = {o: n for n in proto.graph.node for o in n.output}
    steps = {}
    for out in proto.graph.output:
        node = producer.get(out.name)
        scale = inits.get(node.input[1]) if node is not None and node.op_type == "DequantizeLinear" else None
        steps[out.name] = float(scale) if scale is not None and scale.size == 1 else None
    return steps


def build_float(name, folder):
    torch.manual_seed(0)
    spec = MODELS[name]()
    perturb_constants(spec.module, seed=1)
    settle_batch_norms(spec.module, [torch.from_numpy(spec.runs[-1][n]) for n in spec.inputs])
    if spec.finish is not None:
        spec.module = spec.finish(spec.module).eval()
    path = os.path.join(folder, f"{name}.onnx")
    spec.exporter = export_checked(spec, path)
    return spec, path


def build(name, folder, made, scratch):
    """Writes one model and its runs; returns its manifest entry. made maps the float models
    built so far to (spec, path), which the quantized models start from; one not built yet is
    built in scratch."""
    path = os.path.join(folder, f"{name}.onnx")
    quantized = name in QUANTIZED
    if quantized:
        base = QUANTIZED[name]
        if base not in made:
            made[base] = build_float(base, scratch)
        spec, float_path = made[base]
        source = quantize(name, base, float_path, path)
    else:
        spec, _ = made[name] = build_float(name, folder)
        source = spec.source
    results, names = run_ort(path, spec.runs)
    proto = onnx.load(path)
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    steps = output_steps(proto) if quantized else {}
    runs = []
    for k, (run, outs) in enumerate(zip(spec.runs, results)):
        inputs = {}
        for n, value in run.items():
            inputs[n] = f"{name}.{k}.{sanitize(n)}.npy"
            np.save(os.path.join(folder, inputs[n]), value)
        outputs = []
        for j, (n, value) in enumerate(zip(names, outs)):
            file = f"{name}.{k}.out{j}.npy"
            np.save(os.path.join(folder, file), value)
            outputs.append({"name": n, "file": file, "shape": list(value.shape), "dtype": str(value.dtype), "step": steps.get(n)})
        runs.append({"inputs": inputs, "outputs": outputs})
    ops = collections.Counter(n.op_type for n in all_nodes(proto.graph))
    print(f"{name}: {os.path.getsize(path)} bytes, {spec.exporter}, opset {opset}, "
          f"runs {[{n: list(v.shape) for n, v in r.items()} for r in spec.runs]}, ops {dict(ops)}")
    return {"name": name, "file": f"{name}.onnx", "source": source, "exporter": spec.exporter, "opset": opset,
            "tolerance": FLOAT_TOLERANCE, "quantized": quantized, "runs": runs}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default="Tests/Data/modelset")
    parser.add_argument("--only", nargs="+", choices=list(MODELS) + list(QUANTIZED), metavar="NAME",
                        help=f"some of: {', '.join(list(MODELS) + list(QUANTIZED))}")
    args = parser.parse_args()
    os.makedirs(args.folder, exist_ok=True)
    manifest_path = os.path.join(args.folder, "manifest.json")
    entries = {}
    if args.only and os.path.exists(manifest_path):
        with open(manifest_path) as f:
            entries = {e["name"]: e for e in json.load(f)}
    made = {}
    order = list(MODELS) + list(QUANTIZED)
    with tempfile.TemporaryDirectory(prefix="mkmodelset.") as scratch:
        for name in args.only or order:
            entries[name] = build(name, args.folder, made, scratch)
    with open(manifest_path, "w") as f:
        json.dump([entries[n] for n in order if n in entries], f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
