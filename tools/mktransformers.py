"""Exports small transformer models from `transformers` configurations, with random weights (no
download), as ONNX files that take int64 token ids: the test data of the typed-tensor path.

    python3 tools/mktransformers.py Tests/Data/transformers          # the small test models
    python3 tools/mktransformers.py /tmp/bench --benchmark           # BERT-base-like, for compare.py

Each model is written with .npy files of example inputs (`<name>.<input>.npy`) and of ONNX
Runtime's output on them (`<name>.expected.npy`), so that tests need neither torch nor
onnxruntime. Needs torch and transformers (pip), onnx and onnxruntime.
"""
import os
import sys

import numpy as np
import torch
import transformers


def export(model, inputs, names, path, outputs):
    model.eval()
    with torch.no_grad():
        torch.onnx.export(model, tuple(inputs[n] for n in names), path, input_names=names, output_names=outputs,
                          opset_version=17, dynamo=False, do_constant_folding=True)


def example_inputs(batch, length, vocab, seed, token_types=False):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (batch, length), generator=g, dtype=torch.int64)
    mask = torch.ones(batch, length, dtype=torch.int64)
    # Padding at the end of the first sequence: the mask must matter.
    if length > 4:
        mask[0, length - 3:] = 0
        ids[0, length - 3:] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    if token_types:
        types = torch.zeros(batch, length, dtype=torch.int64)
        types[:, length // 2:] = 1
        inputs["token_type_ids"] = types
    return inputs


def bert(hidden, layers, heads, intermediate, vocab, positions):
    config = transformers.BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                     intermediate_size=intermediate, max_position_embeddings=positions, hidden_act="gelu")
    torch.manual_seed(0)
    return transformers.BertModel(config, add_pooling_layer=False)


def gpt2(hidden, layers, heads, vocab, positions):
    config = transformers.GPT2Config(vocab_size=vocab, n_embd=hidden, n_layer=layers, n_head=heads, n_positions=positions, use_cache=False)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config)


class LogitsOnly(torch.nn.Module):
    """The model's first output alone (the last hidden state, or the logits)."""
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, *args):
        names = ["input_ids", "attention_mask", "token_type_ids"][:len(args)]
        return self.model(**dict(zip(names, args)), return_dict=True)[0]


def write(folder, name, model, inputs, output):
    import onnxruntime
    path = os.path.join(folder, f"{name}.onnx")
    names = list(inputs)
    export(LogitsOnly(model), inputs, names, path, [output])
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = {n: inputs[n].numpy() for n in names}
    expected = session.run(None, feeds)[0]
    for n, value in feeds.items():
        np.save(os.path.join(folder, f"{name}.{n}.npy"), value)
    np.save(os.path.join(folder, f"{name}.expected.npy"), expected)
    print(f"{path}: {os.path.getsize(path)} bytes, {output} {expected.shape}")


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "Tests/Data/transformers"
    os.makedirs(folder, exist_ok=True)
    if "--benchmark" in sys.argv:
        # BERT-base's layer (hidden 768, 12 heads, 3072 wide), 12 layers, sequence 128, batch 1.
        write(folder, "bert_base_seq128", bert(768, 12, 12, 3072, 30522, 512), example_inputs(1, 128, 30522, 1, True), "last_hidden_state")
        return
    write(folder, "bert_tiny", bert(64, 2, 4, 128, 320, 64), example_inputs(2, 16, 320, 1, True), "last_hidden_state")
    write(folder, "gpt2_tiny", gpt2(64, 2, 4, 320, 64), example_inputs(2, 16, 320, 2), "logits")


if __name__ == "__main__":
    main()
