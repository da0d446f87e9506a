"""bench/torch/seed.py: the notebook's captioner (lua/luacap/models/seed.lua) in PyTorch, a
faithful replica for `make bench-torch`: the same layers and sizes, Keras' masking on
pre-padded prefixes done with packed sequences (only real tokens computed), dropout, Adam
(Keras' epsilon 1e-7). Not a trainer: it times what bench/seed.lua times and prints one
JSON line per figure (format: bench/torch/compare.lua's header).

  python3 bench/torch/seed.py [--threads N] [--reps R] [--quick]

Keras -> PyTorch: an LSTM kernel (C, 4H) is weight_ih (4H, C) transposed, gate order
i, f, c(g), o in both; Keras' one bias is bias_ih with bias_hh = 0; a Dense kernel (C, OC)
is Linear.weight (OC, C) transposed. load_luacap() copies a luacap model in that way
(bench/torch/check_logits.py uses it).
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as Fn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

V, TMAX, FEAT = 8485, 35, 4096
# training pairs of a Flickr8k-size epoch: 8,091 images x 5 captions x 11 (mean caption
# length 12, startseq and endseq included), as bench/seed.lua's synthetic dataset
FLICKR_PAIRS = 8091 * 5 * 11


class Seed(nn.Module):
    def __init__(self, vocab_size, max_len, feat_dim=4096, img_dense=512, embed_dim=300,
                 units=256, dec_units=None, dec_dense=512, dropout=0.5):
        super().__init__()
        dec_units = dec_units or 2 * units
        self.max_len = max_len
        self.img_drop = nn.Dropout(dropout)
        self.img_dense = nn.Linear(feat_dim, img_dense)
        self.img_lstm = nn.LSTM(img_dense, units, batch_first=True, bidirectional=True)
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.cap_drop = nn.Dropout(dropout)
        self.cap_lstm = nn.LSTM(embed_dim, units, batch_first=True, bidirectional=True)
        self.dec_lstm = nn.LSTM(4 * units, dec_units, batch_first=True)
        self.dec_drop = nn.Dropout(dropout)
        self.dec_dense = nn.Linear(dec_units, dec_dense)
        self.out = nn.Linear(dec_dense, vocab_size)
        for lstm in (self.img_lstm, self.cap_lstm, self.dec_lstm):   # Keras has one bias
            for name, p in lstm.named_parameters():
                if name.startswith('bias_hh'):
                    p.requires_grad_(False)
                    p.data.zero_()

    def forward_image(self, feats):
        """feats (B, F) -> (B, T, 2U): Dense(relu), RepeatVector(T), BiLSTM (no mask)."""
        fe2 = Fn.relu(self.img_dense(self.img_drop(feats)))
        fe3 = fe2.unsqueeze(1).expand(-1, self.max_len, -1)
        return self.img_lstm(fe3)[0]

    def forward_caption(self, fe4, ids):
        """fe4 (B, T, 2U), ids (B, T) pre-padded (>= 1 real token a row) -> logits (B, V).
        Keras' mask on a pre-padded row: both directions see only the real tokens and
        output 0 at padded steps; the decoder's last output is its last real step's."""
        B, T = ids.shape
        n = (ids != 0).sum(1)                                     # (B) real tokens
        col = torch.arange(T).unsqueeze(0)
        left = (col + (T - n).unsqueeze(1)) % T                   # real tokens first
        ids_left = torch.gather(ids, 1, left)
        se2 = self.cap_drop(self.embed(ids_left))
        lens = n.cpu()
        packed = pack_padded_sequence(se2, lens, batch_first=True, enforce_sorted=False)
        se3_left = pad_packed_sequence(self.cap_lstm(packed)[0], batch_first=True,
                                       total_length=T)[0]         # zeros past n
        back = ((col - (T - n).unsqueeze(1)) % T).unsqueeze(2).expand(-1, -1, se3_left.shape[2])
        se3 = torch.gather(se3_left, 1, back)                     # back to the positions
        w = torch.softmax(torch.bmm(se3, fe4.transpose(1, 2)), dim=2)   # (B, T, T)
        ctx = torch.bmm(w, fe4)
        dec_in = torch.cat([ctx, se3], dim=2)
        dec_left = torch.gather(dec_in, 1, left.unsqueeze(2).expand(-1, -1, dec_in.shape[2]))
        packed = pack_padded_sequence(dec_left, lens, batch_first=True, enforce_sorted=False)
        h = self.dec_lstm(packed)[1][0][0]                        # (B, D) at each last step
        return self.out(Fn.relu(self.dec_dense(self.dec_drop(h))))

    def forward(self, feats, ids):
        return self.forward_caption(self.forward_image(feats), ids)


def load_luacap(model, params):
    """params: {luacap parameter name: nested list or flat list + shape}, as
    check_logits.lua writes them. Copies luacap's weights into the replica."""
    def t(name):
        p = params[name]
        return torch.tensor(p['data'], dtype=torch.float32).reshape(p['shape'])

    def lstm(mod, prefix, suffix=''):
        getattr(mod, 'weight_ih_l0' + suffix).data.copy_(t(prefix + '.kernel').t())
        getattr(mod, 'weight_hh_l0' + suffix).data.copy_(t(prefix + '.recurrent_kernel').t())
        getattr(mod, 'bias_ih_l0' + suffix).data.copy_(t(prefix + '.bias'))
        getattr(mod, 'bias_hh_l0' + suffix).data.zero_()

    def dense(mod, prefix):
        mod.weight.data.copy_(t(prefix + '.kernel').t())
        mod.bias.data.copy_(t(prefix + '.bias'))

    with torch.no_grad():
        dense(model.img_dense, 'img_dense')
        model.embed.weight.data.copy_(t('embed.embeddings'))
        for name in ('img_lstm', 'cap_lstm'):
            lstm(getattr(model, name), name + '.forward_lstm')
            lstm(getattr(model, name), name + '.backward_lstm', '_reverse')
        lstm(model.dec_lstm, 'dec_lstm')
        dense(model.dec_dense, 'dec_dense')
        dense(model.out, 'out')


def random_ids(B, gen):
    """Pre-padded prefixes of captions of ~12 tokens: row b gets a length in 1..11 (as
    bench/seed.lua's random_ids)."""
    n = torch.randint(1, 12, (B,), generator=gen)
    ids = torch.randint(1, V, (B, TMAX), generator=gen)
    ids[torch.arange(TMAX).unsqueeze(0) < (TMAX - n).unsqueeze(1)] = 0
    return ids


def train_bench(m, B, reps, gen):
    """Median seconds of one training step (forward, loss, backward, Adam) at batch B."""
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-4, eps=1e-7)
    m.train()
    ts = []
    for r in range(reps + 1):
        feats = torch.randn(B, FEAT, generator=gen)
        ids = random_ids(B, gen)
        y = torch.randint(1, V, (B,), generator=gen)
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = Fn.cross_entropy(m(feats, ids), y)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        if r > 0:
            ts.append(dt)
    return statistics.median(ts)


def decode_bench(m, N, batch, reps, gen):
    """Median seconds per image of greedy decoding, max_len steps per image (random weights
    rarely emit endseq, so bench/seed.lua's images run all steps too): the image branch once
    per batch, then each step the whole pre-padded prefix through the caption branch."""
    m.eval()
    ts = []
    with torch.no_grad():
        for r in range(reps + 1):
            feats = torch.randn(N, FEAT, generator=gen)
            t0 = time.perf_counter()
            for first in range(0, N, batch):
                f = feats[first:first + batch]
                fe4 = m.forward_image(f)
                Bc = f.shape[0]
                ids = torch.zeros(Bc, TMAX, dtype=torch.long)
                ids[:, -1] = 1                                    # startseq
                for step in range(1, TMAX + 1):
                    best = m.forward_caption(fe4, ids).argmax(1)
                    best[best == 0] = 1                           # keep every row going
                    ids = torch.cat([ids[:, 1:], best.unsqueeze(1)], dim=1)
            dt = time.perf_counter() - t0
            if r > 0:
                ts.append(dt / N)
    return statistics.median(ts)


def emit(figure, value, unit, better):
    print(json.dumps({'figure': figure, 'value': value, 'unit': unit, 'better': better,
                      'side': 'torch', 'threads': torch.get_num_threads()}))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--threads', type=int, default=int(os.environ.get('OMP_NUM_THREADS', '2')))
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--only', default='', help='comma-separated figure names')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    gen = torch.Generator().manual_seed(1)
    only = set(x for x in a.only.split(',') if x)
    m = Seed(V, TMAX)
    for B in (32, 256):
        name = 'train_b%d' % B
        if not only or name in only:
            s = train_bench(m, B, a.reps if B == 32 else max(2, a.reps // 2), gen)
            emit(name, B / s, 'pairs/s', 'higher')
            if B == 32:   # extrapolated from the same step time
                emit('flickr8k_epoch_b32', FLICKR_PAIRS / (B / s) / 60, 'min', 'lower')
    for batch, N in ((1, 2 if a.quick else 3), (64, 64)):
        name = 'decode_b%d' % batch
        if not only or name in only:
            s = decode_bench(m, N, batch, 1 if a.quick else 2, gen)
            emit(name, s * 1e3, 'ms/image', 'lower')


if __name__ == '__main__':
    main()
