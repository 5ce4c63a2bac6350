#!/usr/bin/env python3
# The "oracle input" control of docs/results.md: a copy of cf.safetensors whose user factors are the
# user's profile genres (+1 liked, -1 disliked, 0 otherwise; 19 genres in the first columns).
# Usage: /usr/bin/python3 scripts/analysis/oracle_genre_embeddings.py R/cf/cf.safetensors R/data/profiles.jsonl OUT/cf.safetensors
# Writes a copy of cf.safetensors whose user_factors are the liked-genre multi-hot of each user's profile
import json, struct, sys, numpy as np
src,profiles,dst=sys.argv[1:4]
b=open(src,'rb').read(); n=struct.unpack('<Q',b[:8])[0]; h=json.loads(b[8:8+n]); base=8+n
v=h['user_factors']; s,e=v['data_offsets']; U=np.frombuffer(b[base+s:base+e],dtype=np.float32).reshape(v['shape']).copy()
uid=np.frombuffer(b[base+h['user_ids']['data_offsets'][0]:base+h['user_ids']['data_offsets'][1]],dtype=np.int64)
row={int(u):i for i,u in enumerate(uid)}
profs=[json.loads(l) for l in open(profiles)]
genres=sorted({g['name'] for p in profs for g in p['liked_genres']})
U[:]=0
for p in profs:
    r=row[p['user_id']]
    for g in p['liked_genres']: U[r,genres.index(g['name'])]=1.0
    for g in p['disliked_genres']: U[r,genres.index(g['name'])] = -1.0 if g['name'] in genres else 0
out=bytearray(b); out[base+s:base+e]=U.tobytes(); open(dst,'wb').write(out)
print("genres",len(genres),"users",len(profs))
