#!/usr/bin/env python3
# The "oracle input" control of docs/results.md: a copy of cf.safetensors whose user factors are the
# user's profile genres (+1 liked, -1 disliked, 0 otherwise; 19 genres in the first columns).
# Usage: /usr/bin/python3 scripts/analysis/oracle_genre_embeddings.py R/cf/cf.safetensors R/data/profiles.jsonl OUT/cf.safetensors
import json, sys

import numpy as np

from safetensors_np import read

src, profiles, dst = sys.argv[1:4]
t, raw, header, base = read(src)
U = np.zeros_like(t['user_factors'])
row = {int(u): i for i, u in enumerate(t['user_ids'])}
profs = [json.loads(l) for l in open(profiles)]
genres = sorted({g['name'] for p in profs for key in ('liked_genres', 'disliked_genres') for g in p[key]})
for p in profs:
    r = row[p['user_id']]
    for g in p['liked_genres']:
        U[r, genres.index(g['name'])] = 1.0
    for g in p['disliked_genres']:
        U[r, genres.index(g['name'])] = -1.0
start, end = header['user_factors']['data_offsets']
out = bytearray(raw)
out[base + start:base + end] = U.astype(np.float32).tobytes()
open(dst, 'wb').write(out)
print("genres", len(genres), "users", len(profs))
