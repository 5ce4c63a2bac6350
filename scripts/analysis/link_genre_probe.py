#!/usr/bin/env python3
# How much do the CF user factors say about the genres a pitch's link sentence names, beyond the
# movie's own genres (which the prompt shows)? A multi-label logistic probe per genre, trained on the
# train users' clean pitches, scored on the test users' (held-out nats per pitch, lower is better).
# Features: "movie" = the movie's genres; "als" = those + the standardised ALS user factors; "oracle"
# = those + the oracle cf file's factors (scripts/analysis/oracle_genre_embeddings.py).
# Usage (Debian's python3-torch): /usr/bin/python3 scripts/analysis/link_genre_probe.py \
#          R/data R/cf/cf.safetensors [ORACLE/cf.safetensors] [L2 penalty, default 0.03]
import json, sys

import numpy as np
import torch

from safetensors_np import load

data, cf_path = sys.argv[1:3]
oracle_path = sys.argv[3] if len(sys.argv) > 3 else None
penalty = float(sys.argv[4]) if len(sys.argv) > 4 else 0.03
cf = load(cf_path)
U = cf['user_factors']
U = (U - U.mean(0)) / (U.std(0) + 1e-8)
row = {int(u): i for i, u in enumerate(cf['user_ids'])}
oracle = load(oracle_path)['user_factors'] if oracle_path else None


def clean(split):
    return [q for q in map(json.loads, open(f'{data}/sft/{split}.jsonl')) if not q['defects']]


train, test = clean('train'), clean('test')
genres = sorted({g for q in train + test for g in q['genres']} |
                {t[6:] for q in train + test for t in q['link_terms'] if t.startswith('genre:')})
index = {g: k for k, g in enumerate(genres)}


def features(qs, kind):
    out = []
    for q in qs:
        movie = np.zeros(len(genres), np.float32)
        for g in q['genres']:
            movie[index[g]] = 1
        parts = [movie]
        if kind == 'als':
            parts.append(U[row[q['user_id']]])
        if kind == 'oracle':
            parts.append(oracle[row[q['user_id']]])
        out.append(np.concatenate(parts))
    return torch.tensor(np.array(out))


def labels(qs):
    y = np.zeros((len(qs), len(genres)), np.float32)
    for k, q in enumerate(qs):
        for t in q['link_terms']:
            if t.startswith('genre:'):
                y[k, index[t[6:]]] = 1
    return torch.tensor(y)


y_train, y_test = labels(train), labels(test)
print(f'{len(train)} train / {len(test)} test pitches; {float((y_test.sum(1) > 0).float().mean()):.3f} '
      f'of test links name a genre; L2 penalty {penalty}')
for kind in ['movie', 'als'] + (['oracle'] if oracle is not None else []):
    torch.manual_seed(0)
    x_train, x_test = features(train, kind), features(test, kind)
    probe = torch.nn.Linear(x_train.shape[1], len(genres))
    opt = torch.optim.LBFGS(probe.parameters(), max_iter=500)
    bce = torch.nn.BCEWithLogitsLoss(reduction='sum')

    def closure():
        opt.zero_grad()
        loss = bce(probe(x_train), y_train) / len(train) + penalty * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        nll = bce(probe(x_test), y_test).item() / len(test)
    print(f'{kind:6s} held-out nats per pitch: {nll:.4f}')
