#!/usr/bin/env python3
"""ittt against PyTorch on the CPU: the same checkpoint, timed interleaved, printed as ratios.

    /tmp/venv/bin/python src/bench/torch_compare.py [--threads 1,2] [--chunk 64] [--rounds 7] [--steps 3]
                                                    [--variants eager,sdpa,compile] [--models ttt,plain] [--no-ttt]
                                                    [--bin build/ittt_bench] [--record build/torch_compare.txt]

Needs torch and transformers (an optional peer: `make test` never runs this). It
 1. writes the bench model of `make bench` as an ittt checkpoint (ittt_bench --save-model),
 2. builds the same model in PyTorch from that checkpoint: transformers' Qwen3ForCausalLM
    (sliding-window layers, tied embeddings) with the TTT layers' MLP replaced by the
    In-Place TTT MLP of docs/ttt.md, written as the release writes it (chunk-local depthwise
    conv, V = U P, per-chunk deltas, exclusive cumulative sum, apply),
 3. checks that both give the same logits (and loss) on the same batch,
 4. times a training step (forward, cross-entropy, backward, gradient clipping at 1.0, AdamW
    with ittt's settings) and a prefill (inference forward) for ittt and each PyTorch variant
    (eager attention, sdpa, torch.compile of the sdpa model), in rounds that visit every variant
    in turn (A B C A B C ...), so that a burst of load from elsewhere hits all of them,
 5. prints, per model (with TTT, and the same model without: --models) and thread count, median
    and min of every variant and the ratios PyTorch / ittt (> 1: ittt is faster), with the load
    average before and after, and which BLAS and vector ISA this PyTorch build uses
    (torch.__config__.show(), torch.backends.cpu.get_cpu_capability()).
ittt runs as a server process (ittt_bench --serve) so that no process start is timed.
With --record FILE the goal lines are also written to FILE (build/torch_compare.txt is where
the summary of `make bench` looks for them), headed by the date, the machine and the load.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn
from transformers import Qwen3Config, Qwen3ForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---------------------------------------------------------------- the model in PyTorch

class TttMlp(nn.Module):
    """The In-Place TTT MLP (docs/ttt.md), parallel form, for a batch of equal-length sequences.

    Z = silu(H Wg^T) * (H Wu^T); U = chunk-local depthwise conv of S_src (offsets -2..2, zero
    padding at each chunk's edges); V = U P; dW_i = V_[i]^T Z_[i]; S_i = sum_{j<i} dW_j;
    O_[i] = Z_[i] (Wd + eta S_i)^T.
    """

    def __init__(self, cfg, source):
        super().__init__()
        d, f = cfg["hidden_size"], cfg["intermediate_size"]
        self.gate_proj = nn.Linear(d, f, bias=False)
        self.up_proj = nn.Linear(d, f, bias=False)
        self.down_proj = nn.Linear(f, d, bias=False)
        offsets = cfg["ttt_conv_offsets"]
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets))) and -offsets[0] == offsets[-1], \
            "this comparator implements centred contiguous conv taps only"
        self.ttt_conv = nn.Conv1d(d, d, len(offsets), groups=d, bias=False, padding=offsets[-1])
        self.ttt_proj = None
        if cfg["ttt_proj"]:  # stored as ".ttt_proj.weight" and used untransposed: V = U @ P
            self.ttt_proj = nn.Module()
            self.ttt_proj.weight = nn.Parameter(torch.zeros(d, d))
        self.chunk, self.eta = cfg["ttt_chunk"], cfg["ttt_lr"]
        self.source = source  # a one-element list holding the current S_src (B, n, d)

    def forward(self, h):
        B, n, d = h.shape
        z = F.silu(self.gate_proj(h)) * self.up_proj(h)  # (B, n, f)
        C = self.chunk
        T = (n + C - 1) // C
        pad = T * C - n
        src = self.source[0] if self.source[0] is not None else h
        s = F.pad(src, (0, 0, 0, pad)).reshape(B * T, C, d).transpose(1, 2)  # (B*T, d, C): one chunk per row
        u = self.ttt_conv(s).transpose(1, 2).reshape(B, T, C, d)              # zero padding per chunk
        v = u @ self.ttt_proj.weight if self.ttt_proj is not None else u
        zc = F.pad(z, (0, 0, 0, pad)).reshape(B, T, C, -1)
        delta = torch.einsum("btcd,btcf->btdf", v, zc)                        # (B, T, d, f)
        S = torch.cumsum(delta, dim=1) - delta                                 # exclusive prefix sum
        o = zc @ self.down_proj.weight.t() + self.eta * torch.einsum("btcf,btdf->btcd", zc, S)
        return o.reshape(B, T * C, d)[:, :n]


def torch_model(ckpt, attn):
    cfg = json.load(open(os.path.join(ckpt, "config.json")))
    hf = Qwen3Config(vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"], intermediate_size=cfg["intermediate_size"],
                     num_hidden_layers=cfg["num_hidden_layers"], num_attention_heads=cfg["num_attention_heads"],
                     num_key_value_heads=cfg["num_key_value_heads"], head_dim=cfg["head_dim"], rope_theta=cfg["rope_theta"],
                     rms_norm_eps=cfg["rms_norm_eps"], tie_word_embeddings=cfg["tie_word_embeddings"],
                     use_sliding_window=cfg["use_sliding_window"], sliding_window=cfg["sliding_window"],
                     max_window_layers=0, layer_types=cfg["layer_types"], max_position_embeddings=32768,
                     attention_bias=False, attn_implementation=attn)
    model = Qwen3ForCausalLM(hf)
    source = [None]
    if cfg.get("ttt_mode"):
        assert cfg["ttt_target"] == "input_embed", "this comparator implements ttt_target = input_embed"
        for l in cfg["ttt_layers"]:
            model.model.layers[l].mlp = TttMlp(cfg, source)
        model.model.embed_tokens.register_forward_hook(lambda mod, inp, out: source.__setitem__(0, out))
    state = load_file(os.path.join(ckpt, "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not (cfg["tie_word_embeddings"] and m == "lm_head.weight")]
    assert not missing and not unexpected, f"checkpoint mismatch: missing {missing}, unexpected {unexpected}"
    if cfg["tie_word_embeddings"]:
        model.tie_weights()
    return model, cfg


class TorchRunner:
    def __init__(self, ckpt, attn, compiled, tokens, targets):
        self.model, _ = torch_model(ckpt, attn)
        self.tokens, self.targets = tokens, targets
        decay = [p for n, p in self.model.named_parameters() if p.dim() >= 2 and "ttt_" not in n]
        rest = [p for n, p in self.model.named_parameters() if not (p.dim() >= 2 and "ttt_" not in n)]
        # ittt's Trainer: AdamW (0.9, 0.95), eps 1e-8, decay 0.1 on matrices, clipping at 1.0.
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                                     lr=3e-3, betas=(0.9, 0.95), eps=1e-8)
        self.fwd = torch.compile(self.model) if compiled else self.model

    def logits(self):
        with torch.no_grad():
            return self.fwd(input_ids=self.tokens).logits

    def train_step(self):
        self.opt.zero_grad(set_to_none=True)
        logits = self.fwd(input_ids=self.tokens).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), self.targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        return loss

    def timed(self, what, k):
        out = []
        for _ in range(k):
            t0 = time.perf_counter()
            if what == "train":
                self.train_step()
            else:
                self.logits()
            out.append((time.perf_counter() - t0) * 1e3)
        return out


class IttRunner:
    def __init__(self, binary, ckpt, threads, batch_path, B, n):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        self.p = subprocess.Popen([binary, "--serve", ckpt, "--threads", str(threads)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env=env)
        assert self.p.stdout.readline().startswith("ready"), "ittt_bench --serve did not start"
        self.ask(f"batch {batch_path} {B} {n}")

    def ask(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        answer = self.p.stdout.readline().strip()
        if answer.startswith("error"):
            raise RuntimeError(f"ittt: {answer}")
        return answer

    def timed(self, what, k):
        return [float(x) for x in self.ask(f"{what} {k}").split()[1:]]

    def close(self):
        self.p.stdin.write("quit\n")
        self.p.stdin.flush()
        self.p.wait()


def load():
    return "%.2f %.2f %.2f" % os.getloadavg()


def torch_build():
    """What PyTorch computes with on this CPU: its BLAS, oneDNN and the vector ISA it dispatches to."""
    config = torch.__config__.show()
    blas = next((part.split("=", 1)[1] for line in config.splitlines() for part in line.replace(",", " ").split()
                 if part.startswith("BLAS_INFO=")), "?")
    libraries = [line.strip(" -") for line in config.splitlines() if "Math Kernel Library" in line or "MKL-DNN" in line
                 or "OpenBLAS" in line]
    return f"BLAS {blas}; CPU capability {torch.backends.cpu.get_cpu_capability()}; " + "; ".join(libraries)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "ittt_bench"))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--models", default="ttt", help="ttt, plain or both (ttt,plain): the bench model with TTT and/or without")
    ap.add_argument("--no-ttt", action="store_true", help="the same as --models plain")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=7, help="timed rounds per variant (after one warm-up round)")
    ap.add_argument("--steps", type=int, default=3, help="timed calls per variant and round")
    ap.add_argument("--variants", default="eager,sdpa,compile")
    ap.add_argument("--record", default="", help="also write the goal lines to this file (for make bench's summary)")
    args = ap.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    B, n = args.batch, args.seq_len

    models = ["plain"] if args.no_ttt else [m for m in args.models.split(",") if m]
    assert all(m in ("ttt", "plain") for m in models), f"--models: expected ttt and/or plain, found {args.models}"
    tmp = tempfile.mkdtemp(prefix="ittt_torch_")
    build = torch_build()
    print(f"torch {torch.__version__}: {build}")
    before = load()
    print(f"load average before: {before}")
    summary = []
    for model in models:
        ckpt = os.path.join(tmp, "ckpt_" + model)
        save = [args.bin, "--save-model", ckpt, "--chunk", str(args.chunk)] + (["--no-ttt"] if model == "plain" else [])
        subprocess.run(save, check=True, stdout=subprocess.DEVNULL)
        cfg = json.load(open(os.path.join(ckpt, "config.json")))
        g = torch.Generator().manual_seed(1)
        tokens = torch.randint(4, cfg["vocab_size"], (B, n), generator=g)
        targets = torch.randint(4, cfg["vocab_size"], (B, n), generator=g)
        batch_path = os.path.join(tmp, "batch.bin")
        with open(batch_path, "wb") as fh:
            fh.write(tokens.to(torch.int32).numpy().tobytes())
            fh.write(targets.to(torch.int32).numpy().tobytes())
        label = f"TTT C={args.chunk}" if cfg.get("ttt_mode") else "no TTT"
        print(f"\nmodel: {'TTT on layers ' + str(cfg['ttt_layers']) + ', C = ' + str(args.chunk) if cfg.get('ttt_mode') else 'no TTT'},"
              f" B = {B}, n = {n}, d = {cfg['hidden_size']}, f = {cfg['intermediate_size']}, {cfg['num_hidden_layers']} layers")
        for threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(threads)
            runners = {"ittt": IttRunner(args.bin, ckpt, threads, batch_path, B, n)}
            for v in variants:
                runners[v] = TorchRunner(ckpt, "eager" if v == "eager" else "sdpa", v == "compile", tokens, targets)

            # The same model: logits and loss before any training step.
            ittt_logits_path = os.path.join(tmp, "logits.bin")
            runners["ittt"].ask(f"logits {ittt_logits_path}")
            ittt_logits = torch.frombuffer(bytearray(open(ittt_logits_path, "rb").read()), dtype=torch.float32).reshape(B, n, -1)
            ittt_loss = float(runners["ittt"].ask("loss").split()[1])
            for v in variants:
                ref = runners[v].logits()
                diff = (ref - ittt_logits).abs().max().item()
                loss = F.cross_entropy(ref.reshape(-1, ref.shape[-1]), targets.reshape(-1)).item()
                print(f"[{label}, {threads} thread(s)] {v}: max |logits - ittt| = {diff:.2e}, loss {loss:.6f} vs ittt {ittt_loss:.6f}")
                assert diff < 1e-3, f"{v} and ittt compute different models (max logit difference {diff})"

            times = {(name, what): [] for name in runners for what in ("train", "prefill")}
            for rnd in range(args.rounds + 1):  # round 0: warm-up (and torch.compile's compilation)
                for what in ("train", "prefill"):
                    for name, r in runners.items():
                        t = r.timed(what, args.steps)
                        if rnd > 0:
                            times[(name, what)] += t
            runners["ittt"].close()

            print(f"\n{label}, {threads} thread(s): ms per call over {args.rounds} rounds x {args.steps} calls, variants interleaved"
                  f" (load average now {load()})")
            print("| what | variant | median ms | min ms | variant / ittt (median) | (min) |")
            print("|---|---|---|---|---|---|")
            for what in ("train", "prefill"):
                base = times[("ittt", what)]
                for name in runners:
                    t = times[(name, what)]
                    rm, rn = statistics.median(t) / statistics.median(base), min(t) / min(base)
                    print(f"| {what} | {name} | {statistics.median(t):.1f} | {min(t):.1f} | "
                          f"{'-' if name == 'ittt' else f'{rm:.2f}x'} | {'-' if name == 'ittt' else f'{rn:.2f}x'} |")
                    if name in ("sdpa", "compile"):
                        summary.append((label, threads, what, name, rm, rn))
                # The goal's comparator: PyTorch's faster of sdpa and torch.compile (by median; by min)
                fast = [name for name in ("sdpa", "compile") if name in runners]
                if fast:
                    rm = min(statistics.median(times[(name, what)]) for name in fast) / statistics.median(base)
                    rn = min(min(times[(name, what)]) for name in fast) / min(base)
                    summary.append((label, threads, what, "best", rm, rn))
    after = load()
    print(f"\nload average after: {after}")
    lines = [f"{label:9s} {threads} thread(s) {what:7s} vs {name:7s}: {r:.2f}x (min {rn:.2f}x)  {'met' if r >= 1.5 else 'NOT met'}"
             for label, threads, what, name, r, rn in summary]
    print("\ngoal: ittt >= 1.5x PyTorch's best of sdpa and torch.compile (ratio of medians; best: the faster of the two)")
    for line in lines:
        print("  " + line)
    if args.record:
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
        with open(args.record, "w") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs ({cpu}), torch {torch.__version__} "
                     f"({build}), C = {args.chunk}, load average before {before}, after {after}\n")
            for line in lines:
                fh.write(line + "\n")


if __name__ == "__main__":
    main()
