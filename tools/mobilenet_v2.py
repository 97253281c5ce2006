"""MobileNet v2 (Sandler et al. 2018) as an ONNX model with seeded random weights, built with
onnx.helper: no torchvision and no download. Depthwise 3x3 convolutions, ReLU6 as Clip(0, 6),
BatchNorm after every convolution, residual Adds, global average pooling and a classifier."""
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto


def build(path, seed=0, batch=1):
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    counter = [0]

    def name(prefix):
        counter[0] += 1
        return f"{prefix}{counter[0]}"

    def const(array, prefix):
        n = name(prefix)
        inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), n))
        return n

    six, zero = const(6.0, "six"), const(0.0, "zero")

    def conv_bn(x, cin, cout, k, stride, groups=1, relu6=True):
        w = rng.normal(0, np.sqrt(2.0 / (cin // groups * k * k)), size=(cout, cin // groups, k, k))
        conv = name("conv")
        nodes.append(helper.make_node("Conv", [x, const(w, "w")], [conv], kernel_shape=[k, k], strides=[stride, stride],
                                      pads=[k // 2] * 4, group=groups))
        bn = name("bn")
        params = [rng.uniform(0.5, 1.5, cout), rng.uniform(-0.1, 0.1, cout), rng.uniform(-0.1, 0.1, cout), rng.uniform(0.5, 1.5, cout)]
        nodes.append(helper.make_node("BatchNormalization", [conv] + [const(p, "bn_p") for p in params], [bn], epsilon=1e-5))
        if not relu6:
            return bn
        out = name("relu6")
        nodes.append(helper.make_node("Clip", [bn, zero, six], [out]))
        return out

    x = conv_bn("input", 3, 32, 3, 2)
    cin = 32
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            y = conv_bn(x, cin, hidden, 1, 1) if t != 1 else x
            y = conv_bn(y, hidden, hidden, 3, stride, groups=hidden)
            y = conv_bn(y, hidden, c, 1, 1, relu6=False)
            if stride == 1 and cin == c:
                added = name("add")
                nodes.append(helper.make_node("Add", [x, y], [added]))
                y = added
            x, cin = y, c
    x = conv_bn(x, cin, 1280, 1, 1)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["features"], axis=1))
    w = rng.normal(0, np.sqrt(1.0 / 1280), size=(1000, 1280))
    nodes.append(helper.make_node("Gemm", ["features", const(w, "fc_w"), const(np.zeros(1000), "fc_b")], ["logits"], transB=1))
    graph = helper.make_graph(nodes, "mobilenet_v2", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 224, 224])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 1000])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="lathe tools/mobilenet_v2.py")
    onnx.checker.check_model(model)
    onnx.save(model, path)
