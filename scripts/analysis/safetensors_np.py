"""Read safetensors files into numpy arrays (the analysis scripts here; no `safetensors` package needed)."""
import json
import struct

import numpy as np

DTYPES = {'F32': np.float32, 'F64': np.float64, 'I32': np.int32, 'I64': np.int64}


def read(path):
    """Returns (tensors by name, raw bytes, header, offset of the data block)."""
    raw = open(path, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    tensors = {}
    for name, v in header.items():
        if name == '__metadata__':
            continue
        start, end = v['data_offsets']
        tensors[name] = np.frombuffer(raw[base + start:base + end], dtype=DTYPES[v['dtype']]).reshape(v['shape'])
    return tensors, raw, header, base


def load(path):
    return read(path)[0]
