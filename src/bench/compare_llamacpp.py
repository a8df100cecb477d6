#!/usr/bin/env python3
"""ittt against llama.cpp on a random model of Qwen3-0.6B's shape: prefill and decode, timed interleaved.

    python3 src/bench/compare_llamacpp.py [--threads 1,2] [--prompt 512] [--decode 32] [--rounds 3]
                                          [--bin build/ittt_bench] [--work /tmp/ittt-llamacpp]
                                          [--venv /tmp/ittt-llamacpp-venv]
    make bench-llamacpp [LLAMACPP_ARGS='--rounds 5']

Nothing of this is a dependency of `make test`. The script
 1. makes a scratch virtual environment (--venv) with llama-cpp-python (built from PyPI's source
    package for this CPU), transformers, torch, gguf and safetensors, unless it is there already,
    and runs itself again inside it;
 2. makes a random model of exactly Qwen3-0.6B's shape (hidden 1024, intermediate 3072, 28 layers,
    16 query / 8 KV heads of 128, vocabulary 151936, tied embeddings) with transformers, seeded,
    saved by save_pretrained in BF16 (what the Hugging Face download holds), into --work;
 3. converts it to GGUF F32 and BF16 with llama.cpp's own convert_hf_to_gguf.py, taken from the
    llama-cpp-python source package (vendor/llama.cpp). The model has no real tokenizer (the hub
    cannot be reached from here): the conversion is given ittt's tokenizer fixture
    (tests/fixtures/tokenizer, a small byte-level BPE with Qwen2's settings) and told that its
    pre-tokenizer is Qwen2's; the timings feed token ids, so the vocabulary's strings never matter;
 4. starts ittt as a timing server on the same checkpoint (ittt_bench --serve: loads the BF16
    safetensors as F32) and loads both GGUF files with llama_cpp.Llama;
 5. checks that ittt and llama.cpp F32 give the same next-token logits after the same tokens;
 6. times, in rounds that visit every subject and thread count in turn (ittt, llama.cpp F32,
    llama.cpp BF16 at 1 thread, then at 2, then the next round), a prefill of --prompt random
    tokens followed by --decode tokens decoded one at a time; and prints median and min of each,
    the ratios llama.cpp time / ittt time (> 1: ittt faster) and the goals, with the load average
    before, between the rounds and after.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ["torch", "transformers", "safetensors", "numpy", "gguf", "sentencepiece", "llama-cpp-python"]
IMPORTS = ["torch", "transformers", "safetensors", "numpy", "llama_cpp"]

QWEN3_0_6B = dict(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                  num_key_value_heads=8, head_dim=128, max_position_embeddings=40960, rms_norm_eps=1e-6, tie_word_embeddings=True,
                  hidden_act="silu", attention_bias=False, use_sliding_window=False)


def log(*args):
    print(*args, flush=True)


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---------------------------------------------------------------- 1. the scratch environment

def ensure_venv(venv):
    """Runs this script again in venv, after making it and installing PACKAGES if they are missing."""
    python = os.path.join(venv, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        return
    probe = [python, "-c", "import " + ", ".join(IMPORTS)]
    if not os.path.exists(python) or subprocess.run(probe, capture_output=True).returncode != 0:
        log(f"compare_llamacpp: installing {' '.join(PACKAGES)} into {venv} (llama-cpp-python compiles llama.cpp: minutes)")
        if not os.path.exists(python):
            subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2))
        subprocess.run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q"] + PACKAGES, check=True, env=env)
    os.execv(python, [python] + sys.argv)


# ---------------------------------------------------------------- 2. and 3. the model and its GGUF files

def make_model(path, seed):
    """The random Qwen3-0.6B-shaped model, saved by transformers in BF16, with the tokenizer fixture."""
    if os.path.exists(os.path.join(path, "model.safetensors")) or os.path.exists(os.path.join(path, "model.safetensors.index.json")):
        return
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM
    log(f"compare_llamacpp: making the random Qwen3-0.6B-shaped model in {path}")
    kwargs = dict(QWEN3_0_6B)
    try:
        config = Qwen3Config(rope_parameters={"rope_type": "default", "rope_theta": 1e6}, **kwargs)
    except TypeError:  # transformers < 5
        config = Qwen3Config(rope_theta=1e6, **kwargs)
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path)
    shutil.copy(os.path.join(ROOT, "tests", "fixtures", "tokenizer", "tokenizer.json"), path)
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 40960}, f)


def llama_cpp_source(work):
    """vendor/llama.cpp of the installed llama-cpp-python's source package (convert_hf_to_gguf.py, gguf-py)."""
    import llama_cpp
    version = llama_cpp.__version__
    dest = os.path.join(work, f"llama_cpp_python-{version}")
    vendor = os.path.join(dest, "vendor", "llama.cpp")
    if not os.path.exists(os.path.join(vendor, "convert_hf_to_gguf.py")):
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", "-d", tmp,
                            f"llama-cpp-python=={version}"], check=True)
            sdist = os.path.join(tmp, os.listdir(tmp)[0])
            subprocess.run(["tar", "xzf", sdist, "-C", work, f"llama_cpp_python-{version}/vendor/llama.cpp"], check=True)
    return vendor


# Runs llama.cpp's converter with one change: the pre-tokenizer is declared Qwen2's instead of being
# recognised from a hash of how the tokenizer splits a test text (the fixture's vocabulary is not
# Qwen's, so no known hash matches; the timings never tokenize).
CONVERT = """
import sys
sys.path.insert(0, {vendor!r})
sys.path.insert(1, {gguf!r})
sys.argv = ["convert_hf_to_gguf.py"] + {args!r}
from conversion import base
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "qwen2"
import convert_hf_to_gguf
convert_hf_to_gguf.main()
"""


def make_gguf(model_dir, vendor, outtype, out):
    if os.path.exists(out):
        return
    log(f"compare_llamacpp: converting to GGUF {outtype} with {vendor}/convert_hf_to_gguf.py")
    code = CONVERT.format(vendor=vendor, gguf=os.path.join(vendor, "gguf-py"), args=[model_dir, "--outtype", outtype, "--outfile", out + ".part"])
    subprocess.run([sys.executable, "-c", code], check=True, cwd=vendor)
    os.rename(out + ".part", out)


# ---------------------------------------------------------------- 4. the subjects

class Ittt:
    """ittt_bench --serve on the checkpoint: 'threads N', 'stream PATH P K [OUT]'."""

    def __init__(self, binary, model_dir, env):
        self.proc = subprocess.Popen([binary, "--serve", model_dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=dict(os.environ, **env))
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"ittt server did not start: {line!r}")
        self.tmp = tempfile.mkdtemp(prefix="ittt_llamacpp_")

    def ask(self, request):
        self.proc.stdin.write(request + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if answer.startswith("error") or not answer:
            raise RuntimeError(f"ittt: {request!r} -> {answer!r}")
        return answer

    def run(self, threads, prompt, decode, logits_out=None):
        """(prefill seconds, [decode seconds per token]); the last logits to logits_out."""
        import numpy as np
        self.ask(f"threads {threads}")
        path = os.path.join(self.tmp, "tokens.bin")
        np.asarray(list(prompt) + list(decode), dtype=np.int32).tofile(path)
        ms = [float(x) for x in self.ask(f"stream {path} {len(prompt)} {len(decode)} {logits_out or ''}").split()[1:]]
        return ms[0] / 1e3, [x / 1e3 for x in ms[1:]]

    def close(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


class LlamaCpp:
    def __init__(self, path, n_ctx, n_batch):
        import llama_cpp
        self.llama_cpp = llama_cpp
        self.llm = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch, n_threads=1, n_threads_batch=1,
                                   verbose=False)
        self.threads = 1

    def set_threads(self, threads):
        if threads != self.threads:
            self.llama_cpp.llama_set_n_threads(self.llm.ctx, threads, threads)
            self.threads = threads

    def run(self, threads, prompt, decode):
        self.set_threads(threads)
        self.llm.reset()
        t0 = time.perf_counter()
        self.llm.eval(list(prompt))
        prefill = time.perf_counter() - t0
        times = []
        for token in decode:
            t0 = time.perf_counter()
            self.llm.eval([token])
            times.append(time.perf_counter() - t0)
        return prefill, times

    def last_logits(self):
        """The logits llama.cpp computed for the last token evaluated (Llama.eval copies none)."""
        import numpy as np
        return np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.llm.n_vocab(),)).astype(np.float32)


# ---------------------------------------------------------------- 5. and 6.

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "ittt_bench"))
    ap.add_argument("--work", default="/tmp/ittt-llamacpp")
    ap.add_argument("--venv", default="/tmp/ittt-llamacpp-venv")
    ap.add_argument("--ittt-env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment of the ittt server, e.g. OMP_WAIT_POLICY=passive (docs/benchmarks.md: on a busy machine)")
    args = ap.parse_args()
    ensure_venv(args.venv)

    import numpy as np
    import llama_cpp
    threads = [int(t) for t in args.threads.split(",")]
    os.makedirs(args.work, exist_ok=True)
    model_dir = os.path.join(args.work, "qwen3-0.6b-shape")
    make_model(model_dir, args.seed)
    vendor = llama_cpp_source(args.work)
    gguf = {}
    for outtype in ("f32", "bf16"):
        gguf[outtype] = os.path.join(args.work, f"qwen3-0.6b-shape-{outtype}.gguf")
        make_gguf(model_dir, vendor, outtype, gguf[outtype])

    rng = np.random.default_rng(args.seed + 1)
    prompt = [int(x) for x in rng.integers(4, QWEN3_0_6B["vocab_size"], args.prompt)]
    decode = [int(x) for x in rng.integers(4, QWEN3_0_6B["vocab_size"], args.decode)]
    n_ctx = args.prompt + args.decode + 16

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
    flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
    log(f"compare_llamacpp: {cpu}, {os.cpu_count()} CPUs, avx512f {'yes' if 'avx512f' in flags else 'no'}, "
        f"avx512_bf16 {'yes' if 'avx512_bf16' in flags else 'no'}; llama-cpp-python {llama_cpp.__version__}")
    log(f"llama.cpp system info: {llama_cpp.llama_print_system_info().decode().strip()}")

    ittt_env = dict(kv.split("=", 1) for kv in args.ittt_env)
    if ittt_env:
        log(f"ittt server environment: {' '.join(args.ittt_env)}")
    subjects = {"ittt F32": Ittt(args.bin, model_dir, ittt_env), "llama.cpp F32": LlamaCpp(gguf["f32"], n_ctx, args.prompt),
                "llama.cpp BF16": LlamaCpp(gguf["bf16"], n_ctx, args.prompt)}

    # The same numbers: next-token logits after the prompt and the decoded tokens.
    logits_path = os.path.join(args.work, "ittt_logits.bin")
    subjects["ittt F32"].run(max(threads), prompt, decode[:4], logits_path)
    ours = np.fromfile(logits_path, dtype=np.float32)
    subjects["llama.cpp F32"].run(max(threads), prompt, decode[:4])
    theirs = subjects["llama.cpp F32"].last_logits()
    diff = float(np.max(np.abs(ours - theirs)))
    log(f"same model: max |logit ittt - llama.cpp F32| = {diff:.3g} (logits up to {float(np.max(np.abs(theirs))):.3g}); "
        f"argmax {int(np.argmax(ours))} vs {int(np.argmax(theirs))}")

    # Warm-up (page the GGUF files in, let each settle), then the timed rounds.
    for s in subjects.values():
        s.run(max(threads), prompt[:64], decode[:4])
    loads = [load_average()]
    log(f"load average before: {loads[0]}")
    results = {(name, t): {"prefill": [], "decode": []} for name in subjects for t in threads}
    for r in range(args.rounds):
        for t in threads:
            for name, s in subjects.items():
                prefill, times = s.run(t, prompt, decode)
                results[(name, t)]["prefill"].append(prefill)
                results[(name, t)]["decode"].append(times)
        loads.append(load_average())
        log(f"round {r + 1}/{args.rounds} done, load average {loads[-1]}")
    subjects["ittt F32"].close()

    # Decode: the median over every timed token, and the min over rounds of each round's median.
    def summary(name, t):
        res = results[(name, t)]
        per_round = [statistics.median(x) for x in res["decode"]]
        return {"prefill_median": statistics.median(res["prefill"]), "prefill_min": min(res["prefill"]),
                "decode_median": statistics.median([x for run in res["decode"] for x in run]), "decode_min": min(per_round)}

    log(f"\nQwen3-0.6B shape (random), prefill {args.prompt} tokens, then {args.decode} decoded one by one; "
        f"{args.rounds} rounds interleaved; median (min)")
    log("| threads | what | " + " | ".join(subjects) + " | llama.cpp F32 / ittt | llama.cpp BF16 / ittt |")
    log("|---|---|" + "---|" * (len(subjects) + 2))
    goals = []
    for t in threads:
        sm = {name: summary(name, t) for name in subjects}
        ref = sm["ittt F32"]
        for what, unit, scale in (("prefill", "s", 1), ("decode", "ms/token", 1e3)):
            cells = [f"{sm[n][what + '_median'] * scale:.3g} ({sm[n][what + '_min'] * scale:.3g}) {unit}" for n in subjects]
            ratios = [f"{sm[n][what + '_median'] / ref[what + '_median']:.2f}x ({sm[n][what + '_min'] / ref[what + '_min']:.2f}x)"
                      for n in ("llama.cpp F32", "llama.cpp BF16")]
            log(f"| {t} | {what} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
        f32 = ref["decode_median"] / sm["llama.cpp F32"]["decode_median"]
        goals.append(f"  {t} thread(s): ittt F32 decode / llama.cpp F32 = {f32:.2f}x (goal <= 1.2x: {'met' if f32 <= 1.2 else 'NOT met'}); "
                     f"tokens/s ittt {1 / ref['decode_median']:.1f}, llama.cpp F32 {1 / sm['llama.cpp F32']['decode_median']:.1f}, "
                     f"BF16 {1 / sm['llama.cpp BF16']['decode_median']:.1f}; prefill ittt / llama.cpp F32 = "
                     f"{ref['prefill_median'] / sm['llama.cpp F32']['prefill_median']:.2f}x")
    log("\ngoals (ratios of medians; > 1 means ittt takes longer):")
    for g in goals:
        log(g)
    log(f"load average before, after each round: {' | '.join(loads)}")


if __name__ == "__main__":
    main()
