#!/usr/bin/env python3
"""Writes Tests/Data/recurrent: PyTorch's nn.LSTM and nn.GRU (one layer, batch_first) on fixed
random weights, inputs and initial states, and a bidirectional LSTM, as .npy files the Swift
tests read (RecurrentOptionsTests) to check Lathe's LSTM, GRU and Bidirectional against them.

    tools/mkrecurrentfixture.py [DIR]

Files, for NAME in lstm, gru, bilstm: NAME.x (input [batch, time, features]), NAME.h0 (and
lstm.c0), NAME.weight_ih, NAME.weight_hh, NAME.bias_ih, NAME.bias_hh in PyTorch's layout
(bilstm also the *_reverse ones), NAME.output (every step's h), NAME.hn (and lstm.cn).
Needs torch and numpy; run it again only to change the fixture.
"""
import os, sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "Tests", "Data", "recurrent")
BATCH, TIME, FEATURES, HIDDEN = 2, 5, 3, 4


def save(name, array):
    np.save(os.path.join(OUT, f"{name}.npy"), np.ascontiguousarray(array, dtype=np.float32))


def weights(prefix, module, suffix=""):
    for part in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]:
        save(f"{prefix}.{part}{suffix}", getattr(module, f"{part}_l0{suffix}").detach().numpy())


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(7)
    x = torch.rand(BATCH, TIME, FEATURES) * 2 - 1
    h0, c0 = torch.rand(1, BATCH, HIDDEN) - 0.5, torch.rand(1, BATCH, HIDDEN) - 0.5
    with torch.no_grad():
        lstm = torch.nn.LSTM(FEATURES, HIDDEN, batch_first=True)
        out, (hn, cn) = lstm(x, (h0, c0))
        save("lstm.x", x); save("lstm.h0", h0[0]); save("lstm.c0", c0[0]); weights("lstm", lstm)
        save("lstm.output", out); save("lstm.hn", hn[0]); save("lstm.cn", cn[0])

        gru = torch.nn.GRU(FEATURES, HIDDEN, batch_first=True)
        out, hn = gru(x, h0)
        save("gru.x", x); save("gru.h0", h0[0]); weights("gru", gru)
        save("gru.output", out); save("gru.hn", hn[0])

        bilstm = torch.nn.LSTM(FEATURES, HIDDEN, batch_first=True, bidirectional=True)
        out, _ = bilstm(x)
        save("bilstm.x", x); weights("bilstm", bilstm); weights("bilstm", bilstm, "_reverse")
        save("bilstm.output", out)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
