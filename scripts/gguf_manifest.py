#!/usr/bin/env python3
"""Write an independent manifest of a GGUF file with the `gguf` Python package (ggml's own reader).

The manifest (tensor names, types, shapes, offsets, sizes; metadata keys and value types) is the
reference that runtime/tests/real_models.rs compares Eddy's reader against. It was generated with
gguf==0.19.0:

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install gguf==0.19.0
    /tmp/venv/bin/python scripts/gguf_manifest.py models/X.gguf > runtime/tests/data/manifest_X.json
"""
import json
import sys

import gguf

r = gguf.GGUFReader(sys.argv[1], "r")
fields = []
for name, f in r.fields.items():
    if name.startswith("GGUF."):
        continue  # the reader's pseudo-fields for the header
    t = f.types[0]
    fields.append({"key": name, "type": t.name.lower()})
tensors = []
for t in r.tensors:
    tensors.append({
        "name": t.name,
        "type": t.tensor_type.name,
        "shape": [int(d) for d in t.shape],
        "n_elements": int(t.n_elements),
        "n_bytes": int(t.n_bytes),
        "file_offset": int(t.data_offset),
    })
json.dump({
    "generator": "gguf (Python) " + "0.19.0",
    "alignment": r.alignment,
    "data_offset": r.data_offset,
    "metadata": fields,
    "tensors": tensors,
}, sys.stdout, indent=0)
print()
