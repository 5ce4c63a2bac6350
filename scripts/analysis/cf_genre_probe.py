#!/usr/bin/env python3
# How much of a user's profile do the CF user factors hold? A logistic probe per genre from the ALS
# user factors to "the profile lists this genre as liked"; trained on 80% of users, AUC on the rest.
# Usage (Debian's python3-torch): /usr/bin/python3 scripts/analysis/cf_genre_probe.py R/cf/cf.safetensors R/data/profiles.jsonl
import json, sys

import numpy as np
import torch

from safetensors_np import load
t=load(sys.argv[1])
U=t['user_factors']; uid=t.get('user_ids')
row={int(u):i for i,u in enumerate(uid)} if uid is not None else None
profs=[json.loads(l) for l in open(sys.argv[2])]
genres=sorted({g['name'] for p in profs for g in p['liked_genres']})
X=[];Y=[]
for p in profs:
    r=row.get(p['user_id']) if row else p['user_id']
    if r is None: continue
    X.append(U[r]); liked={g['name'] for g in p['liked_genres']}; Y.append([g in liked for g in genres])
X=torch.tensor(np.array(X),dtype=torch.float32); Y=torch.tensor(Y,dtype=torch.float32)
X=(X-X.mean(0))/X.std(0)
n=len(X); perm=torch.randperm(n,generator=torch.Generator().manual_seed(0)); tr=perm[:int(.8*n)]; te=perm[int(.8*n):]
W=torch.zeros(X.shape[1],len(genres),requires_grad=True); b=torch.zeros(len(genres),requires_grad=True)
opt=torch.optim.LBFGS([W,b],max_iter=500)
def closure():
    opt.zero_grad(); l=torch.nn.functional.binary_cross_entropy_with_logits(X[tr]@W+b,Y[tr])+1e-3*(W**2).sum(); l.backward(); return l
opt.step(closure)
with torch.no_grad(): S=X[te]@W+b
def auc(s,y):
    pos=s[y>0]; neg=s[y==0]
    if len(pos)==0 or len(neg)==0: return float('nan')
    return float((pos[:,None]>neg[None,:]).float().mean())
for j,g in enumerate(genres): print(f"{g:12s} liked by {int(Y[:,j].sum()):4d}/{n}  test AUC {auc(S[:,j],Y[te,j]):.3f}")
