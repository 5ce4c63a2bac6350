"""What the dist/cli_* scripts share: a safetensors file's float32 tensors (no optimizer state) and the
losses a metrics JSONL file logged."""
import json
import os
import struct
from array import array


def tensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or name.startswith("optimizer") or t["dtype"] != "F32":
            continue
        begin, end = t["data_offsets"]
        out[name] = array("f", blob[8 + n + begin:8 + n + end])
    return out


def losses(folder, metrics="metrics.jsonl"):
    with open(os.path.join(folder, metrics)) as f:
        return [json.loads(line)["loss"] for line in f if line.strip()]
