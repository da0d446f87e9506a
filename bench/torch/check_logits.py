"""bench/torch/check_logits.py FILE: the PyTorch half of bench/torch/check_logits.lua:
loads luacap's weights, inputs and logits from FILE (JSON), runs bench/torch/seed.py's
replica in evaluation mode and prints the largest logit difference relative to the largest
|logit|; exits 1 above 1e-4."""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seed  # noqa: E402


def tensor(d):
    return torch.tensor(d['data'], dtype=torch.float32).reshape(d['shape'])


def main():
    with open(sys.argv[1]) as f:
        j = json.load(f)
    c = j['cfg']
    m = seed.Seed(c['vocab_size'], c['max_len'], feat_dim=c['feat_dim'], img_dense=c['img_dense'],
                  embed_dim=c['embed_dim'], units=c['units'], dec_dense=c['dec_dense'])
    seed.load_luacap(m, j['params'])
    m.eval()
    with torch.no_grad():
        out = m(tensor(j['feats']), tensor(j['ids']).long())
    ref = tensor(j['logits'])
    rel = ((out - ref).abs().max() / ref.abs().max()).item()
    print('torch replica vs luacap logits (%s): max |diff| / max |logit| = %.3g (limit 1e-4)'
          % ('x'.join(map(str, ref.shape)), rel))
    sys.exit(0 if rel < 1e-4 else 1)


if __name__ == '__main__':
    main()
