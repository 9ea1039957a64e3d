#!/usr/bin/env python3
"""Print a small text manifest of a GGUF file: its layout, every metadata key and every tensor,
each with a SHA-256 of its bytes. Standard library only (its own GGUF parser, independent of
Eddy's reader).

    python3 scripts/gguf_hashes.py FILE.gguf > manifest.tsv

runtime/tests/quantize_models.rs prints the same manifest for the file `eddy quantize` writes
and compares the two line by line; scripts/quantize-hashes.sh makes the reference ones under
testdata/quantize/ from llama.cpp's quantizer. Lines (tab-separated):

    gguf     VERSION  N_TENSORS  N_KV  ALIGNMENT  DATA_OFFSET  FILE_SIZE
    kv       KEY  TYPE  SHA256 of the encoded value (for arrays: element type, count, elements)
    tensor   NAME  TYPE  DIMS (comma-separated, innermost first)  OFFSET  N_BYTES  SHA256
"""
import hashlib
import struct
import sys

# GGUF value types: id -> (name, fixed size or None)
VALUE_TYPES = {
    0: ("u8", 1), 1: ("i8", 1), 2: ("u16", 2), 3: ("i16", 2), 4: ("u32", 4), 5: ("i32", 4),
    6: ("f32", 4), 7: ("bool", 1), 8: ("string", None), 9: ("array", None), 10: ("u64", 8),
    11: ("i64", 8), 12: ("f64", 8),
}
# GGML tensor types Eddy writes or reads here: id -> (name, block size, bytes per block)
GGML_TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210), 20: ("IQ4_NL", 32, 18), 23: ("IQ4_XS", 256, 136),
    30: ("BF16", 1, 2),
}


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        b = self.data[self.pos:self.pos + n]
        if len(b) != n:
            raise SystemExit(f"truncated at offset {self.pos}")
        self.pos += n
        return b

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def string(self):
        return bytes(self.take(self.u64())).decode("utf-8")

    def skip_value(self, ty):
        name, size = VALUE_TYPES[ty]
        if size is not None:
            self.take(size)
        elif name == "string":
            self.take(self.u64())
        else:
            elem, n = self.u32(), self.u64()
            for _ in range(n):
                self.skip_value(elem)


def main(path):
    with open(path, "rb") as f:
        data = memoryview(f.read())
    r = Reader(data)
    if bytes(r.take(4)) != b"GGUF":
        raise SystemExit(f"{path}: not a GGUF file")
    version, n_tensors, n_kv = r.u32(), r.u64(), r.u64()
    lines, alignment = [], 32
    for _ in range(n_kv):
        key, ty = r.string(), r.u32()
        start = r.pos
        if key == "general.alignment":
            alignment = struct.unpack("<I", data[start:start + 4])[0]
        r.skip_value(ty)
        digest = hashlib.sha256(data[start:r.pos]).hexdigest()
        lines.append(f"kv\t{key}\t{VALUE_TYPES[ty][0]}\t{digest}")
    infos = []
    for _ in range(n_tensors):
        name, nd = r.string(), r.u32()
        dims = [r.u64() for _ in range(nd)]
        ty, offset = r.u32(), r.u64()
        infos.append((name, dims, ty, offset))
    data_offset = (r.pos + alignment - 1) // alignment * alignment
    for name, dims, ty, offset in infos:
        tname, bs, ts = GGML_TYPES[ty]
        n = 1
        for d in dims:
            n *= d
        nbytes = n // bs * ts
        start = data_offset + offset
        digest = hashlib.sha256(data[start:start + nbytes]).hexdigest()
        shape = ",".join(str(d) for d in dims)
        lines.append(f"tensor\t{name}\t{tname}\t{shape}\t{offset}\t{nbytes}\t{digest}")
    print(f"gguf\t{version}\t{n_tensors}\t{n_kv}\t{alignment}\t{data_offset}\t{len(data)}")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1])
