#!/usr/bin/env python3
# How much a trained pitch model's user soft token varies across users (adapter MLP applied in numpy).
# Usage: /usr/bin/python3 scripts/analysis/adapter_spread.py R/cf_seed1/model.safetensors R/cf/cf.safetensors
import math, sys

import numpy as np

from safetensors_np import load
m=load(sys.argv[1]); cf=load(sys.argv[2])
U=cf['user_factors'].astype(np.float64)
gelu=lambda x: 0.5*x*(1+np.tanh(math.sqrt(2/math.pi)*(x+0.044715*x**3)))
h=U@m['adapter.user.fc1.weight'].T+m['adapter.user.fc1.bias']; g=gelu(h)
o=g@m['adapter.user.fc2.weight'].T+m['adapter.user.fc2.bias']
mean=o.mean(0); dev=o-mean
print("soft token: |mean| %.4f, rms deviation across users %.4f"%(np.linalg.norm(mean), np.sqrt((dev**2).sum(1).mean())))
print("fc2.bias norm %.4f  fc2.weight rms %.4f fc1 rms %.4f"%(np.linalg.norm(m['adapter.user.fc2.bias']), np.sqrt((m['adapter.user.fc2.weight']**2).mean()), np.sqrt((m['adapter.user.fc1.weight']**2).mean())))
wte=[k for k in m if 'tok_embeddings' in k or k=='wte.weight'][0]; W=m[wte]
print("token embedding row norm mean %.4f"%np.linalg.norm(W,axis=1).mean())
