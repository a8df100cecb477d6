#!/usr/bin/env python3
"""Writes the seed corpus of the libFuzzer targets (tests/fuzz/corpus/<target>/).

Seeds are small valid (and a few nearly valid) inputs, so the fuzzer starts
from the shapes of real files instead of discovering the format from nothing.
Standard library only. Run from the repository root:

    python3 tests/fuzz/make_seeds.py
"""
import json
import pathlib
import shutil
import struct

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fuzz" / "corpus"


def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, raw bytes) in file order."""
    header, offset, data = {}, 0, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def f32(*xs):
    return struct.pack("<%df" % len(xs), *xs)


def write(target, name, data):
    path = CORPUS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def main():
    shutil.rmtree(CORPUS, ignore_errors=True)
    st = "safetensors"
    write(st, "f32_2x3", safetensors([("w", "F32", [2, 3], f32(1, 2, 3, 4, 5, 6))], {"format": "pt"}))
    write(st, "mixed", safetensors([
        ("model.norm.weight", "F32", [4], f32(1, 1, 1, 1)),
        ("ids", "I32", [3], struct.pack("<3i", 1, -2, 3)),
        ("d", "F64", [1, 2], struct.pack("<2d", 0.5, -0.25)),
        ("b", "BF16", [2], struct.pack("<2H", 0x3F80, 0xC000)),
        ("h", "F16", [2], struct.pack("<2H", 0x3C00, 0x7C00)),
        ("empty", "F32", [0, 5], b""),
    ], {"format": "pt", "note": "seed"}))
    write(st, "scalar_unpadded", safetensors([("s", "F32", [], f32(3.5))], pad=False))
    write(st, "no_tensors", safetensors([], {"format": "pt"}))
    write(st, "truncated", safetensors([("w", "F32", [4], f32(1, 2, 3, 4))])[:-5])
    overlap = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    write(st, "overlap", struct.pack("<Q", len(overlap)) + overlap + f32(1))

    cj = "config_json"
    for path in sorted((ROOT / "data" / "configs").glob("*.json")) + [ROOT / "data" / "demo" / "config.json"]:
        write(cj, path.parent.name + "_" + path.name, path.read_bytes())
    write(cj, "hub_qwen3", json.dumps({
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 151936, "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 16, "max_position_embeddings": 40960, "rope_parameters": {"rope_type": "default", "rope_theta": 1000000},
        "rms_norm_eps": 1e-6, "tie_word_embeddings": True, "use_sliding_window": True, "sliding_window": 32,
        "max_window_layers": 1, "torch_dtype": "bfloat16", "bos_token_id": 151643, "rope_scaling": None,
    }, indent=2))
    write(cj, "minimal", '{"vocab_size": 8, "hidden_size": 4, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2}')

    cli = "cli"
    for i, words in enumerate([
        ["--steps", "200", "--seed", "7", "--lr", "3e-3", "--json"],
        ["--tokens", "1,5,9,30", "--neg=-3", "--name", "x"],
        ["--steps=0", "--tokens=0", "--lr", "-1e-9"],
        ["--seed", "9223372036854775807", "--steps", "1000000000"],
        ["pairs=8,gap=96,filler=pad"],
        ["write:3:enospc"],
        ["trace,any:17:kill"],
        ["keys=2,values=3,queries=1,depth=50,filler=random,pattern_length=4"],
        ["1,2,3"],
        ["-7"],
    ]):
        write(cli, "seed_%02d" % i, "\n".join(words))


if __name__ == "__main__":
    main()
