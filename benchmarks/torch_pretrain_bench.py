#!/usr/bin/env python3
"""PyTorch pretraining throughput and peak memory for the models `graft pretrain` trains,
optionally alternated in one run with a Graft command for a side-by-side comparison.

What is measured (issue 5, "Speed"): training steps (forward, loss, backward, AdamW update) of
  * `full`:   BERT-Mini masked LM, MLM logits over ALL positions (transformers BertForMaskedLM);
  * `masked`: the same BERT-Mini, MLM logits only at the masked positions: the masked hidden rows
              are gathered before the MLM head (a small custom head on BertModel, same math as
              BertOnlyMLMHead: dense + erf GELU + LayerNorm + decoder tied to the word embeddings
              with its own bias);
  * `gpt`:    a GPT of the same size, causal LM (transformers GPT2LMHeadModel, pre-LN, tanh GELU,
              LM head tied to the token embeddings).
BERT-Mini: vocabulary 8,192, hidden 256, 4 layers, 4 heads, FFN 1,024, max positions 512, type
vocabulary 2, erf GELU, LayerNorm eps 1e-12, dropout 0.1 (hidden and attention). GPT:
GPT2Config(n_embd=256, n_layer=4, n_head=4, n_inner=1024, n_positions=128, vocab_size=8192),
i.e. gelu_new (tanh), LayerNorm eps 1e-5, dropout 0.1. Sequence 128, batch 32 for all three.
Optimizer: torch.optim.AdamW(lr=1e-4, weight_decay=0.01) on all parameters, PyTorch's default
CPU implementation (override with --foreach); no gradient clipping unless --clip-norm is given.
Models are built from configs with random initialisation: nothing is downloaded.

Data: random token ids from a seeded torch.Generator, uniform over [5, 8192): ids 0-4 are
taken to be the special tokens ([PAD], [UNK], [CLS], [SEP], [MASK] = 4) and never appear as
data. No padding (every position is a real token, as in packed pretraining blocks), so no
attention mask is passed. BERT masking: each position is selected with probability 0.15
(Bernoulli, the HuggingFace DataCollatorForLanguageModeling rule); selected positions get
80% [MASK], 10% a random id, 10% unchanged; labels are the original ids there and -100
elsewhere. token_type_ids are all 0. GPT: labels = input ids (shifted inside the model).
All batches are generated before timing starts; each step uses its own batch.

Tokens/s = timed_steps * batch * seq / wall seconds of the timed steps (the same count for all
three variants: input tokens processed). Peak memory = ru_maxrss of the measuring process
(resource.getrusage(RUSAGE_SELF) in the child, which includes the Python interpreter and the
torch libraries); the parent also records each child's ru_maxrss from os.wait4 as a cross
check (`wait4_rss_mb`), and does the same for the Graft command.

Each (side, variant, threads) run is a fresh subprocess; torch.set_num_threads(N) and
OMP_NUM_THREADS=MKL_NUM_THREADS=N are set in it, inter-op threads 1.

Usage:
    pip install 'torch==2.13.0+cpu' transformers safetensors
    # PyTorch alone: prints progress on stderr and one JSON object on stdout
    python3 benchmarks/torch_pretrain_bench.py [--variants full masked gpt] [--threads 1 2] \
        [--warmup 3] [--steps 10] [--repeat 3] [--seed 0] [--attn sdpa|eager]
    # Alternated with Graft in one run (medians side by side, ratio Graft/PyTorch):
    python3 benchmarks/torch_pretrain_bench.py --graft .build/release/graft \
        --graft-args='bench pretrain --json --variant {variant} --threads {threads} --steps {steps} --warmup {warmup}'
The Graft template is split with shlex after substituting {variant} (full|masked|gpt),
{threads}, {steps}, {warmup}, {batch}, {seq} and {seed}; the command must print, as the last
JSON line of its stdout, an object with keys `tokens_per_s` and `peak_rss_mb`. (Write
--graft-args=... with '=' so that a template starting with '--' is not taken as an option.)
With --graft the sides alternate within each repeat, and which side goes first alternates
between repeats, so that a busy shared machine affects both alike.

Versions used when this was written and measured: Python 3.11.7, torch 2.13.0+cpu (MKL 2024.2,
oneDNN 3.12, AVX512 capability), transformers 5.24.0, numpy 2.4.6 (not required).
"""
import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.abspath(__file__)
VOCAB = 8192
N_SPECIAL = 5          # [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4
MASK_ID = 4
VARIANTS = ("full", "masked", "gpt")


# ----------------------------------------------------------------------------------------
# Child: one measured run
# ----------------------------------------------------------------------------------------

def bert_config(args):
    from transformers import BertConfig
    return BertConfig(
        vocab_size=VOCAB, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
        intermediate_size=1024, max_position_embeddings=512, type_vocab_size=2,
        hidden_act="gelu", layer_norm_eps=1e-12, hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1, tie_word_embeddings=True, pad_token_id=0,
        attn_implementation=args.attn)


def build_model(variant, args):
    import torch
    from torch import nn
    if variant == "full":
        from transformers import BertForMaskedLM
        model = BertForMaskedLM(bert_config(args))
        assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight

        def step_loss(batch):
            return model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
        return model, step_loss

    if variant == "masked":
        from transformers import BertModel
        from transformers.models.bert.modeling_bert import BertPredictionHeadTransform

        class MaskedOnlyMLM(nn.Module):
            """BertModel + BertOnlyMLMHead math, applied only to the gathered masked rows."""

            def __init__(self, config):
                super().__init__()
                self.bert = BertModel(config, add_pooling_layer=False)
                self.transform = BertPredictionHeadTransform(config)  # dense, GELU, LayerNorm
                self.decoder_bias = nn.Parameter(torch.zeros(config.vocab_size))
                self.ce = nn.CrossEntropyLoss()

            def forward(self, input_ids, labels):
                hidden = self.bert(input_ids=input_ids).last_hidden_state      # (B, S, H)
                flat = labels.reshape(-1)
                rows = (flat != -100).nonzero(as_tuple=True)[0]                 # (M,)
                h = hidden.reshape(-1, hidden.shape[-1]).index_select(0, rows)  # (M, H)
                h = self.transform(h)
                logits = nn.functional.linear(
                    h, self.bert.embeddings.word_embeddings.weight, self.decoder_bias)  # (M, V)
                return self.ce(logits, flat.index_select(0, rows))

        model = MaskedOnlyMLM(bert_config(args))

        def step_loss(batch):
            return model(batch["input_ids"], batch["labels"])
        return model, step_loss

    if variant == "gpt":
        from transformers import GPT2Config, GPT2LMHeadModel
        config = GPT2Config(n_embd=256, n_layer=4, n_head=4, n_inner=1024, n_positions=128,
                            vocab_size=VOCAB, bos_token_id=0, eos_token_id=0,
                            attn_implementation=args.attn)
        model = GPT2LMHeadModel(config)
        assert model.lm_head.weight is model.transformer.wte.weight

        def step_loss(batch):
            return model(input_ids=batch["input_ids"], labels=batch["input_ids"]).loss
        return model, step_loss
    raise ValueError(variant)


def make_batches(variant, n, args, gen):
    import torch
    batches = []
    shape = (args.batch, args.seq)
    for _ in range(n):
        ids = torch.randint(N_SPECIAL, VOCAB, shape, generator=gen)
        if variant == "gpt":
            batches.append({"input_ids": ids})
            continue
        selected = torch.rand(shape, generator=gen) < 0.15
        labels = torch.where(selected, ids, torch.full_like(ids, -100))
        r = torch.rand(shape, generator=gen)
        inputs = ids.clone()
        inputs[selected & (r < 0.8)] = MASK_ID
        rand_pos = selected & (r >= 0.8) & (r < 0.9)
        inputs[rand_pos] = torch.randint(N_SPECIAL, VOCAB, shape, generator=gen)[rand_pos]
        batches.append({"input_ids": inputs, "labels": labels})
    return batches


def child_main(args):
    threads = args.threads[0]
    variant = args.variants[0]
    import torch
    import transformers
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    model, step_loss = build_model(variant, args)
    model.train()
    opt_kw = {"lr": 1e-4, "weight_decay": 0.01}
    if args.foreach is not None:
        opt_kw["foreach"] = args.foreach == "on"
    opt = torch.optim.AdamW(model.parameters(), **opt_kw)
    batches = make_batches(variant, args.warmup + args.steps, args, gen)
    n_masked = [int((b["labels"] != -100).sum()) for b in batches] if variant != "gpt" else []

    def one_step(batch):
        opt.zero_grad(set_to_none=True)
        loss = step_loss(batch)
        loss.backward()
        if args.clip_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_norm)
        opt.step()
        return float(loss.detach())

    losses = []
    for b in batches[:args.warmup]:
        losses.append(one_step(b))
    step_times = []
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    for b in batches[args.warmup:]:
        s = time.perf_counter()
        losses.append(one_step(b))
        step_times.append(time.perf_counter() - s)
    elapsed = time.perf_counter() - t0
    load_after = os.getloadavg()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tokens = args.steps * args.batch * args.seq
    print(json.dumps({
        "side": "pytorch", "variant": variant, "threads": threads,
        "torch_threads": torch.get_num_threads(),
        "tokens_per_s": round(tokens / elapsed, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "timed_steps": args.steps, "warmup_steps": args.warmup,
        "batch": args.batch, "seq": args.seq, "seconds": round(elapsed, 3),
        "step_s_median": round(statistics.median(step_times), 4),
        "step_s_min": round(min(step_times), 4),
        "masked_per_batch_mean": round(statistics.mean(n_masked), 1) if n_masked else None,
        "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4),
        "params": sum(p.numel() for p in model.parameters()),
        "attn": args.attn, "foreach": args.foreach, "clip_norm": args.clip_norm,
        "loadavg_before": load_before, "loadavg_after": load_after,
        "torch": torch.__version__, "transformers": transformers.__version__,
    }), flush=True)


# ----------------------------------------------------------------------------------------
# Parent: orchestration
# ----------------------------------------------------------------------------------------

def run_measured(cmd, env):
    """Run cmd, return (stdout, stderr, returncode, ru_maxrss MiB of that child from wait4)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    # Read both pipes without deadlock, then reap with wait4 to get this child's rusage.
    import threading
    out_chunks, err_chunks = [], []
    t1 = threading.Thread(target=lambda: out_chunks.append(p.stdout.read()))
    t2 = threading.Thread(target=lambda: err_chunks.append(p.stderr.read()))
    t1.start(); t2.start(); t1.join(); t2.join()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return (out_chunks[0].decode("utf-8", "replace"), err_chunks[0].decode("utf-8", "replace"),
            p.returncode, round(ru.ru_maxrss / 1024, 1))


def last_json_line(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def thread_env(threads):
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[k] = str(threads)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    return env


def run_torch(variant, threads, args):
    cmd = [sys.executable, HERE, "--child", "--variants", variant, "--threads", str(threads),
           "--warmup", str(args.warmup), "--steps", str(args.steps), "--seed", str(args.seed),
           "--batch", str(args.batch), "--seq", str(args.seq), "--attn", args.attn]
    if args.foreach is not None:
        cmd += ["--foreach", args.foreach]
    if args.clip_norm:
        cmd += ["--clip-norm", str(args.clip_norm)]
    out, err, rc, wait4_mb = run_measured(cmd, thread_env(threads))
    rec = last_json_line(out)
    if rc != 0 or rec is None:
        sys.stderr.write(err[-4000:])
        raise SystemExit(f"PyTorch run failed ({variant}, {threads} threads), exit {rc}")
    rec["wait4_rss_mb"] = wait4_mb
    return rec


def run_graft(variant, threads, args):
    subst = {"variant": variant, "threads": threads, "steps": args.steps, "warmup": args.warmup,
             "batch": args.batch, "seq": args.seq, "seed": args.seed}
    cmd = [args.graft] + [a.format(**subst) for a in shlex.split(args.graft_args)]
    load_before = os.getloadavg()
    out, err, rc, wait4_mb = run_measured(cmd, thread_env(threads))
    rec = last_json_line(out)
    if rc != 0 or rec is None or "tokens_per_s" not in rec or "peak_rss_mb" not in rec:
        sys.stderr.write(out[-2000:] + err[-4000:])
        raise SystemExit(f"Graft run failed or printed no JSON line with tokens_per_s and "
                         f"peak_rss_mb: {shlex.join(cmd)} (exit {rc})")
    rec = dict(rec)
    rec.update({"side": "graft", "variant": variant, "threads": threads,
                "wait4_rss_mb": wait4_mb, "command": shlex.join(cmd),
                "loadavg_before": load_before, "loadavg_after": os.getloadavg()})
    return rec


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def med(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(vals), 1) if vals else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each configuration per side")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"],
                    help="transformers attention implementation (default sdpa, PyTorch's fastest)")
    ap.add_argument("--foreach", choices=["on", "off"], default=None,
                    help="AdamW foreach implementation (default: PyTorch's default for CPU)")
    ap.add_argument("--clip-norm", type=float, default=0.0,
                    help="clip the gradient norm to this value (default 0: no clipping)")
    ap.add_argument("--graft", help="path to the graft binary: alternate with it in one run")
    ap.add_argument("--graft-args", default="",
                    help="argument template for --graft ({variant} {threads} {steps} {warmup} "
                         "{batch} {seq} {seed}); write --graft-args='...'")
    ap.add_argument("--out", help="also write the JSON result to this file")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.seq > 128 and "gpt" in args.variants:
        ap.error("the GPT has 128 positions: --seq must be at most 128")
    if args.child:
        return child_main(args)
    if args.graft and not args.graft_args:
        ap.error("--graft needs --graft-args (a template with {variant} and {threads})")

    sides = ["pytorch"] + (["graft"] if args.graft else [])
    configs = [(v, t) for v in args.variants for t in args.threads]
    runs = {(s, v, t): [] for s in sides for (v, t) in configs}
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_start = os.getloadavg()
    for rep in range(args.repeat):
        order = sides if rep % 2 == 0 else list(reversed(sides))
        for (v, t) in configs:
            for side in order:
                rec = run_torch(v, t, args) if side == "pytorch" else run_graft(v, t, args)
                runs[(side, v, t)].append(rec)
                sys.stderr.write(
                    f"[{rep + 1}/{args.repeat}] {side:7s} {v:6s} {t} thr: "
                    f"{rec['tokens_per_s']:9.1f} tok/s  peak {rec['peak_rss_mb']:7.1f} MB  "
                    f"(wait4 {rec['wait4_rss_mb']} MB)  load {os.getloadavg()[0]:.2f}\n")
                sys.stderr.flush()

    summary = []
    for (v, t) in configs:
        row = {"variant": v, "threads": t}
        for side in sides:
            rs = runs[(side, v, t)]
            row[side] = {"tokens_per_s_median": med(rs, "tokens_per_s"),
                         "tokens_per_s_runs": [r["tokens_per_s"] for r in rs],
                         "peak_rss_mb_median": med(rs, "peak_rss_mb"),
                         "wait4_rss_mb_median": med(rs, "wait4_rss_mb"), "n": len(rs)}
        if args.graft:
            p, g = row["pytorch"], row["graft"]
            row["speed_ratio_graft_over_pytorch"] = round(
                g["tokens_per_s_median"] / p["tokens_per_s_median"], 3)
            row["memory_ratio_graft_over_pytorch"] = round(
                g["peak_rss_mb_median"] / p["peak_rss_mb_median"], 3)
        summary.append(row)

    import torch
    import transformers
    result = {
        "benchmark": "torch_pretrain_bench", "started_utc": started,
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpu": cpu_model(), "logical_cpus": os.cpu_count(),
                    "loadavg_start": load_start, "loadavg_end": os.getloadavg()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__},
        "settings": {"warmup": args.warmup, "steps": args.steps, "repeat": args.repeat,
                     "batch": args.batch, "seq": args.seq, "seed": args.seed, "attn": args.attn,
                     "foreach": args.foreach, "clip_norm": args.clip_norm,
                     "graft": args.graft, "graft_args": args.graft_args or None,
                     "command": shlex.join([sys.executable] + sys.argv)},
        "summary": summary,
        "runs": [r for s in sides for c in configs for r in runs[(s,) + c]],
    }
    if args.graft:
        hdr = (f"{'variant':7s} {'thr':>3s} | {'PyTorch tok/s':>13s} {'peak MB':>8s} | "
               f"{'Graft tok/s':>11s} {'peak MB':>8s} | {'speed x':>7s} {'mem x':>6s}")
        lines = [hdr, "-" * len(hdr)]
        for row in summary:
            p, g = row["pytorch"], row["graft"]
            lines.append(f"{row['variant']:7s} {row['threads']:3d} | {p['tokens_per_s_median']:13.1f} "
                         f"{p['peak_rss_mb_median']:8.1f} | {g['tokens_per_s_median']:11.1f} "
                         f"{g['peak_rss_mb_median']:8.1f} | {row['speed_ratio_graft_over_pytorch']:7.3f} "
                         f"{row['memory_ratio_graft_over_pytorch']:6.3f}")
        print(f"medians of {args.repeat} runs each; speed x = Graft/PyTorch tokens/s, "
              f"mem x = Graft/PyTorch peak RSS")
        print("\n".join(lines))
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
