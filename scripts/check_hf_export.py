#!/usr/bin/env python3
"""Check a HuggingFace-layout BERT directory (e.g. written by `graft export`) against Graft:
token ids and mean-pooled, L2-normalised sentence embeddings must agree.

The directory is loaded with transformers only (BertModel.from_pretrained(dir), the tokenizer
with PreTrainedTokenizerFast(tokenizer_file=dir/tokenizer.json), or BertTokenizerFast from
BertTokenizerFast.from_pretrained(dir) from vocab.txt when there is no tokenizer.json). Nothing is downloaded (HF_HUB_OFFLINE=1,
local_files_only). For each sentence (one per line; default: a built-in dozen with accents,
CJK, numbers, long ones) it computes, in float32 on CPU, one sentence at a time without padding:
  ids        the tokenizer's ids with special tokens, truncated as the tokenizer.json says (or to
             --max-length, default: the tokenizer's truncation, else min(max_position_embeddings,
             model_max_length));
  embedding  mean over all tokens of last_hidden_state, divided by its L2 norm.
Then it runs
  GRAFT tokenizer encode --tokenizer GRAFT_MODEL --json   (one {"ids": [...], ...} per line)
  GRAFT embed --model GRAFT_MODEL --json                   (one JSON array of floats per line)
with the same sentences on stdin and compares: ids exactly (trailing [PAD] ids that a tokenizer
with fixed padding adds are dropped on both sides first), embeddings by max absolute difference
(must be <= --max-abs, default 1e-4) and cosine (must be >= --min-cosine, default 0.99999).
Exit status: 0 when everything agrees, 1 when something differs (with a message saying what),
2 when something could not be run or loaded.

Self-check of the transformers half without Graft: --reference JSONL compares against a
fixture file with `text`, `input_ids` (+ `n_tokens`), `last_hidden_state` and
`sentence_embedding` fields (../shared/data/fixtures/minilm/reference.jsonl); then --graft
is optional, and the sentences are the fixture's texts unless --sentences is given.

Usage:
    pip install 'torch==2.13.0+cpu' transformers safetensors
    python3 scripts/check_hf_export.py --model HF_EXPORT_DIR --graft .build/release/graft \
        --graft-model GRAFT_MODEL_DIR [--sentences FILE] [--json-out FILE]
    python3 scripts/check_hf_export.py --model ../shared/data/models/all-MiniLM-L6-v2 \
        --reference ../shared/data/fixtures/minilm/reference.jsonl

Versions used when this was written and tested: Python 3.11.7, torch 2.13.0+cpu,
transformers 5.24.0, tokenizers 0.23.3, safetensors 0.8.0.
"""
import argparse
import json
import math
import os
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

BUILTIN_SENTENCES = [
    "A man is eating food.",
    "Hello!",
    "Le café était très agréable près de la cathédrale Notre-Dame, malgré la pluie d'hiver.",
    "Ça coûte 12,50 € — pas cher, n'est-ce pas ? Über-naïve Zoë fährt nach Köln.",
    "東京は日本の首都です。北京是中国的首都。",
    "한국어 문장과 English words mixed together 123.",
    "In 2017, the company reported revenue of $4.5 billion, up 12.3% from 2016 (ref. #A-42).",
    "Call +1 (555) 010-9999 before 07:30 on 2024-03-15; pi is roughly 3.14159.",
    "ΑΒΓ and αβγ, Привет мир, مرحبا بالعالم, and the emoji 🙂 are all in here.",
    "UPPER CASE, lower case, and MiXeD CaSe with\ttabs and  double  spaces.",
    "The term covers two families of animals, the Old World porcupines of family Hystricidae, "
    "and the New World porcupines of family Erethizontidae; both belong to the infraorder "
    "Hystricognathi within the profoundly diverse order Rodentia and display superficially "
    "similar coats of rigid or semi-rigid quills, which are modified hairs composed of thick "
    "plates of keratin embedded in the skin musculature.",
    " ".join(["The influence and imperialism of the West peaked in Asian territories "
              "from the colonial period beginning in the 16th century and substantially "
              "reduced with 20th century decolonization."] * 6),
]


def fail(msg, code=2):
    sys.stderr.write(f"check_hf_export: {msg}\n")
    sys.exit(code)


def load_tokenizer(model_dir):
    from transformers import BertTokenizerFast, PreTrainedTokenizerFast
    tj = os.path.join(model_dir, "tokenizer.json")
    if os.path.exists(tj):
        tok = PreTrainedTokenizerFast(tokenizer_file=tj)
        source = "tokenizer.json (PreTrainedTokenizerFast)"
    elif os.path.exists(os.path.join(model_dir, "vocab.txt")):
        # from_pretrained reads vocab.txt with tokenizer_config.json's options (do_lower_case,
        # strip_accents, ...); in transformers 5 the constructor takes a vocabulary, not a path.
        tok = BertTokenizerFast.from_pretrained(model_dir, local_files_only=True)
        source = "vocab.txt (BertTokenizerFast)"
    else:
        fail(f"{model_dir} has neither tokenizer.json nor vocab.txt")
    backend = tok.backend_tokenizer
    trunc = backend.truncation  # as configured in tokenizer.json, before any call resets it
    pad = backend.padding
    return tok, source, trunc, pad


def model_max_length(model_dir, config):
    limit = config.max_position_embeddings
    cfg = os.path.join(model_dir, "tokenizer_config.json")
    if os.path.exists(cfg):
        with open(cfg) as f:
            m = json.load(f).get("model_max_length")
        if isinstance(m, int) and 0 < m < limit:
            limit = m
    return limit


def hf_side(args, sentences):
    import torch
    import transformers
    from transformers import BertModel
    torch.set_num_threads(args.threads)
    tok, tok_source, trunc, pad = load_tokenizer(args.model)
    try:
        model, info = BertModel.from_pretrained(
            args.model, local_files_only=True, add_pooling_layer=False,
            attn_implementation=args.attn, output_loading_info=True, dtype=torch.float32)
    except Exception as e:  # noqa: BLE001 - report any loading failure plainly
        fail(f"transformers could not load {args.model} as a BertModel: {e}")
    missing = [k for k in info.get("missing_keys", []) if "pooler" not in k]
    if missing:
        fail(f"{args.model}: weights missing from the checkpoint (they would be random): "
             f"{sorted(missing)[:10]}{' ...' if len(missing) > 10 else ''}", 1)
    model.eval()
    if args.max_length:
        max_len = args.max_length
    elif trunc is not None:
        max_len = trunc["max_length"]
    else:
        max_len = model_max_length(args.model, model.config)
    pad_id = pad["pad_id"] if pad else (tok.pad_token_id if tok.pad_token_id is not None
                                        else model.config.pad_token_id)
    ids_all, tokens_all, hidden_all, emb_all = [], [], [], []
    with torch.no_grad():
        for s in sentences:
            enc = tok(s, add_special_tokens=True, truncation=True, max_length=max_len,
                      padding=False)
            ids = enc["input_ids"]
            x = torch.tensor([ids], dtype=torch.long)
            out = model(input_ids=x, attention_mask=torch.ones_like(x),
                        token_type_ids=torch.zeros_like(x)).last_hidden_state[0]
            pooled = out.mean(dim=0)
            emb = pooled / pooled.norm().clamp_min(1e-12)
            ids_all.append(ids)
            tokens_all.append(tok.convert_ids_to_tokens(ids))
            hidden_all.append(out)
            emb_all.append(emb)
    meta = {"tokenizer": tok_source, "max_length": max_len, "pad_id": pad_id,
            "hidden_size": model.config.hidden_size, "layers": model.config.num_hidden_layers,
            "vocab_size": model.config.vocab_size, "attn": args.attn,
            "unexpected_keys": sorted(info.get("unexpected_keys", [])),
            "torch": torch.__version__, "transformers": transformers.__version__}
    return ids_all, tokens_all, hidden_all, emb_all, meta


def strip_trailing(ids, pad_id):
    ids = list(ids)
    while ids and pad_id is not None and ids[-1] == pad_id:
        ids.pop()
    return ids


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else float("nan")


def run_graft(cmd, sentences, what):
    text = "".join(s + "\n" for s in sentences)
    try:
        p = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True,
                           timeout=3600)
    except OSError as e:
        fail(f"could not run {' '.join(cmd)}: {e}")
    if p.returncode != 0:
        fail(f"{what} failed (exit {p.returncode}): {' '.join(cmd)}\n"
             f"{p.stderr.decode('utf-8', 'replace')[-3000:]}")
    lines = [l for l in p.stdout.decode("utf-8").splitlines() if l.strip()]
    if len(lines) != len(sentences):
        fail(f"{what} printed {len(lines)} lines for {len(sentences)} sentences: "
             f"{' '.join(cmd)}", 1)
    try:
        return [json.loads(l) for l in lines]
    except json.JSONDecodeError as e:
        fail(f"{what} printed a line that is not JSON ({e}): {' '.join(cmd)}", 1)


def compare_ids(label, a, b, pad_id):
    a2, b2 = strip_trailing(a, pad_id), strip_trailing(b, pad_id)
    if a2 == b2:
        return None
    k = next((i for i, (x, y) in enumerate(zip(a2, b2)) if x != y), min(len(a2), len(b2)))
    return (f"{label}: ids differ at position {k} (lengths {len(a2)} vs {len(b2)}): "
            f"{a2[max(0, k - 3):k + 4]} vs {b2[max(0, k - 3):k + 4]}")


def compare_vectors(x, y):
    if len(x) != len(y):
        return float("inf"), float("nan")
    return max(abs(p - q) for p, q in zip(x, y)), cosine(x, y)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="HuggingFace-layout BERT directory")
    ap.add_argument("--graft", help="path to the graft binary")
    ap.add_argument("--graft-model", help="Graft model directory (default: --model)")
    ap.add_argument("--sentences", help="file with one sentence per line (default: built-in)")
    ap.add_argument("--reference", help="fixture JSONL to check the transformers side against")
    ap.add_argument("--max-abs", type=float, default=1e-4,
                    help="largest allowed max abs difference of embeddings (default 1e-4)")
    ap.add_argument("--min-cosine", type=float, default=0.99999,
                    help="smallest allowed cosine of embeddings (default 0.99999)")
    ap.add_argument("--hidden-max-abs", type=float, default=1e-4,
                    help="--reference only: allowed max abs difference of last hidden states")
    ap.add_argument("--max-length", type=int, default=0,
                    help="truncate to this many tokens (default: tokenizer's truncation, else "
                         "the model's maximum)")
    ap.add_argument("--attn", default="eager", choices=["eager", "sdpa"],
                    help="transformers attention implementation (default eager)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json-out", help="write per-sentence figures and the verdict here")
    args = ap.parse_args()
    if not args.graft and not args.reference:
        ap.error("give --graft (and --graft-model), or --reference for the transformers self-check")
    if not os.path.isdir(args.model):
        fail(f"--model {args.model}: not a directory")
    graft_model = args.graft_model or args.model

    reference = None
    if args.reference:
        with open(args.reference, encoding="utf-8") as f:
            reference = [json.loads(l) for l in f if l.strip()]
    if args.sentences:
        with open(args.sentences, encoding="utf-8") as f:
            sentences = [l.rstrip("\n").rstrip("\r") for l in f]
        sentences = [s for s in sentences if s.strip()]
    elif reference is not None:
        sentences = [r["text"] for r in reference]
    else:
        sentences = list(BUILTIN_SENTENCES)
    if not sentences:
        fail("no sentences")
    if any("\n" in s or "\r" in s for s in sentences):
        fail("sentences must not contain line breaks (one sentence per line is sent to graft)")

    ids_hf, tokens_hf, hidden_hf, emb_hf, meta = hf_side(args, sentences)
    emb_hf = [e.tolist() for e in emb_hf]
    problems = []
    rows = [{"sentence": s, "n_tokens": len(i)} for s, i in zip(sentences, ids_hf)]
    worst = {}

    if reference is not None:
        by_text = {r["text"]: r for r in reference}
        max_abs_e, min_cos_e, max_abs_h = 0.0, 1.0, 0.0
        n = 0
        for k, s in enumerate(sentences):
            r = by_text.get(s)
            if r is None:
                continue
            n += 1
            ref_ids = r["input_ids"][:r.get("n_tokens", len(r["input_ids"]))]
            msg = compare_ids(f"reference, sentence {k + 1}", ids_hf[k], ref_ids, meta["pad_id"])
            if msg:
                problems.append(msg)
            h = hidden_hf[k]
            ref_h = r.get("last_hidden_state")
            if ref_h is not None and len(ref_h) == h.shape[0]:
                import torch
                d = float((h - torch.tensor(ref_h, dtype=h.dtype)).abs().max())
                rows[k]["ref_hidden_max_abs"] = d
                max_abs_h = max(max_abs_h, d)
                if d > args.hidden_max_abs:
                    problems.append(f"reference, sentence {k + 1}: last hidden state max abs "
                                    f"difference {d:.3g} > {args.hidden_max_abs:g}")
            elif ref_h is not None:
                problems.append(f"reference, sentence {k + 1}: {len(ref_h)} hidden rows in the "
                                f"fixture, {h.shape[0]} here")
            d, c = compare_vectors(emb_hf[k], r["sentence_embedding"])
            rows[k].update({"ref_emb_max_abs": d, "ref_emb_cosine": c})
            max_abs_e, min_cos_e = max(max_abs_e, d), min(min_cos_e, c)
            if not (d <= args.max_abs and c >= args.min_cosine):
                problems.append(f"reference, sentence {k + 1}: embedding max abs {d:.3g}, "
                                f"cosine {c:.9f}")
        worst["reference"] = {"sentences": n, "embedding_max_abs": max_abs_e,
                              "embedding_min_cosine": min_cos_e, "hidden_max_abs": max_abs_h}
        if n == 0:
            problems.append("reference: none of the sentences is in the fixture file")

    if args.graft:
        enc = run_graft([args.graft, "tokenizer", "encode", "--tokenizer", graft_model, "--json"],
                        sentences, "graft tokenizer encode")
        embs = run_graft([args.graft, "embed", "--model", graft_model, "--json"],
                         sentences, "graft embed")
        max_abs_e, min_cos_e, id_mismatches = 0.0, 1.0, 0
        for k in range(len(sentences)):
            g_ids = enc[k].get("ids") if isinstance(enc[k], dict) else None
            if g_ids is None:
                fail(f"graft tokenizer encode: line {k + 1} has no \"ids\"", 1)
            msg = compare_ids(f"graft, sentence {k + 1}", g_ids, ids_hf[k], meta["pad_id"])
            rows[k]["graft_ids_equal"] = msg is None
            if msg:
                id_mismatches += 1
                problems.append(msg + f"\n    graft tokens: {enc[k].get('tokens')}"
                                      f"\n    hf tokens:    {tokens_hf[k]}")
            e = embs[k]
            if not isinstance(e, list) or not all(isinstance(v, (int, float)) for v in e):
                fail(f"graft embed: line {k + 1} is not a JSON array of numbers", 1)
            if len(e) != len(emb_hf[k]):
                problems.append(f"graft, sentence {k + 1}: embedding has {len(e)} values, "
                                f"transformers gives {len(emb_hf[k])}")
                continue
            d, c = compare_vectors(e, emb_hf[k])
            rows[k].update({"graft_emb_max_abs": d, "graft_emb_cosine": c})
            max_abs_e, min_cos_e = max(max_abs_e, d), min(min_cos_e, c)
            if not (d <= args.max_abs and c >= args.min_cosine):
                problems.append(f"graft, sentence {k + 1}: embedding max abs difference {d:.3g} "
                                f"(limit {args.max_abs:g}), cosine {c:.9f} "
                                f"(limit {args.min_cosine})")
        worst["graft"] = {"sentences": len(sentences), "id_mismatches": id_mismatches,
                          "embedding_max_abs": max_abs_e, "embedding_min_cosine": min_cos_e}

    for k, r in enumerate(rows):
        parts = [f"{k + 1:2d} {r['n_tokens']:4d} tok"]
        if "ref_emb_cosine" in r:
            parts.append(f"ref: emb max|d| {r['ref_emb_max_abs']:.2e} cos {r['ref_emb_cosine']:.9f}"
                         + (f" hidden max|d| {r['ref_hidden_max_abs']:.2e}"
                            if "ref_hidden_max_abs" in r else ""))
        if "graft_emb_cosine" in r:
            parts.append(f"graft: ids {'=' if r['graft_ids_equal'] else 'DIFFER'} emb max|d| "
                         f"{r['graft_emb_max_abs']:.2e} cos {r['graft_emb_cosine']:.9f}")
        short = r["sentence"] if len(r["sentence"]) <= 50 else r["sentence"][:47] + "..."
        print("  ".join(parts) + f"  {short!r}")
    print(f"model {args.model}: {meta['layers']} layers, hidden {meta['hidden_size']}, vocabulary "
          f"{meta['vocab_size']}, tokenizer from {meta['tokenizer']}, max length "
          f"{meta['max_length']}; torch {meta['torch']}, transformers {meta['transformers']}")
    for side, w in worst.items():
        print(f"{side}: " + ", ".join(
            (f"{k} {v:.9f}" if "cosine" in k else f"{k} {v:.3g}") if isinstance(v, float)
            else f"{k} {v}" for k, v in w.items()))
    verdict = "ok" if not problems else "differ"
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"model": args.model, "graft": args.graft, "graft_model": graft_model,
                       "reference": args.reference, "meta": meta, "worst": worst,
                       "limits": {"max_abs": args.max_abs, "min_cosine": args.min_cosine},
                       "rows": rows, "problems": problems, "verdict": verdict}, f, indent=1)
    if problems:
        print(f"FAIL: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        sys.exit(1)
    print(f"OK: {len(sentences)} sentences agree (embedding max abs <= {args.max_abs:g}, "
          f"cosine >= {args.min_cosine})")


if __name__ == "__main__":
    main()
