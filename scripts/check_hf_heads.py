#!/usr/bin/env python3
"""Checks that task heads fine-tuned by Graft, exported with `graft export`, load in transformers'
Auto classes and compute the same logits as Graft.

    python3 scripts/check_hf_heads.py --graft .build/release/graft --model RUN/best [--model RUN2/best ...] [--inputs FILE]

For each model directory (its config.json names the head: BertFor{Sequence,Token}Classification,
BertForQuestionAnswering, GPT2For{Sequence,Token}Classification) it
  1. exports it with `graft export` and loads the export with AutoModelForSequenceClassification /
     AutoModelForTokenClassification / AutoModelForQuestionAnswering;
  2. runs `graft logits --model DIR` on the inputs (one text per line; QA: JSON Lines
     {"question", "context"}; default: a few built-in ones, non-ASCII included), which prints the
     token ids Graft ran on and its float32 logits;
  3. runs the transformers model on the same ids (and token type ids) and reports the largest
     absolute logit difference (sequence: [L] per input; token: [T, L]; QA: start and end [T]),
     and whether the exported tokenizer.json, run by HuggingFace `tokenizers`, gives the same ids;
  4. for sequence classification also compares `graft classify`'s probabilities and labels.

Prints one JSON object per model; exits 1 when a difference exceeds --tolerance (1e-4) or ids or
labels disagree. Needs: pip install torch transformers tokenizers
"""
import argparse, json, os, subprocess, sys, tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SENTENCES = ["A gorgeous, funny and deeply moving film.", "The plot is thin and the jokes fall flat.",
             "Naïve, overlong, but the café scenes in Zürich are lovely.", "It is neither good nor bad.",
             "Angela Merkel met Emmanuel Macron in Paris on Tuesday.",
             "EU rejects German call to boycott British lamb .", "Peter Blackburn works for the BBC in London ."]
QUESTIONS = [
    {"question": "Where did Merkel meet Macron?", "context": "Angela Merkel met Emmanuel Macron in Paris on Tuesday to discuss trade."},
    {"question": "What does the Nile flow into?",
     "context": "The Nile is a major north-flowing river in northeastern Africa. It flows into the Mediterranean Sea."},
    {"question": "Who painted the café?", "context": "The café in Zürich, naïvely painted by Zoë Brontë in 1911, still stands."},
]
HEADS = {
    "BertForSequenceClassification": "sequence", "GPT2ForSequenceClassification": "sequence",
    "BertForTokenClassification": "token", "GPT2ForTokenClassification": "token",
    "BertForQuestionAnswering": "qa",
}


def check(graft, model_dir, lines, tolerance):
    import torch
    import transformers
    from tokenizers import Tokenizer
    config = json.load(open(os.path.join(model_dir, "config.json")))
    arch = config["architectures"][0]
    head = HEADS.get(arch)
    if head is None:
        raise SystemExit(f"{model_dir}: {arch} is not a task head this script checks ({', '.join(HEADS)})")
    if lines is None:
        lines = [json.dumps(q, ensure_ascii=False) for q in QUESTIONS] if head == "qa" else SENTENCES
    auto = {"sequence": transformers.AutoModelForSequenceClassification, "token": transformers.AutoModelForTokenClassification,
            "qa": transformers.AutoModelForQuestionAnswering}[head]
    with tempfile.TemporaryDirectory() as hf:
        subprocess.run([graft, "export", "--model", model_dir, "--out", hf], check=True, stdout=subprocess.DEVNULL)
        model = auto.from_pretrained(hf).eval()
        tok = Tokenizer.from_file(os.path.join(hf, "tokenizer.json"))
        tok.no_padding(); tok.no_truncation()
        rows = subprocess.run([graft, "logits", "--model", model_dir], input="\n".join(lines) + "\n",
                              capture_output=True, text=True, check=True).stdout.splitlines()
        worst, ids_agree, tokens = 0.0, True, 0
        for line, row in zip(lines, rows):
            g = json.loads(row)
            ids = g["input_ids"]
            tokens += len(ids)
            if head == "qa":
                q = json.loads(line)
                ids_agree &= tok.encode(q["question"], q["context"]).ids == ids
            else:
                ids_agree &= tok.encode(line).ids == ids
            kwargs = {"input_ids": torch.tensor([ids])}
            if config.get("model_type") == "bert":
                kwargs["token_type_ids"] = torch.tensor([g["token_type_ids"]])
            with torch.no_grad():
                out = model(**kwargs)
            if head == "qa":
                for key in ("start_logits", "end_logits"):
                    worst = max(worst, (getattr(out, key)[0] - torch.tensor(g[key])).abs().max().item())
            else:
                worst = max(worst, (out.logits[0] - torch.tensor(g["logits"])).abs().max().item())
        result = {"model": model_dir, "architecture": arch, "inputs": len(rows), "tokens": tokens,
                  "max_abs_logit_difference": worst, "ids_agree": ids_agree}
        ok = worst <= tolerance and ids_agree and len(rows) == len(lines)
        if head == "sequence":
            out = subprocess.run([graft, "classify", "--model", model_dir], input="\n".join(lines) + "\n",
                                 capture_output=True, text=True, check=True).stdout.splitlines()
            pworst, agree = 0.0, True
            for s, o in zip(lines, out):
                g = json.loads(o)
                with torch.no_grad():
                    p = torch.softmax(model(torch.tensor([tok.encode(s).ids])).logits[0], -1).tolist()
                labels = [model.config.id2label[i] for i in range(len(p))]
                pworst = max(pworst, max(abs(v - g["scores"][label]) for label, v in zip(labels, p)))
                agree &= labels[max(range(len(p)), key=p.__getitem__)] == g["label"]
            result.update({"max_abs_probability_difference": pworst, "labels_agree": agree})
            ok &= pworst <= tolerance and agree
        result.update({"ok": ok, "transformers": transformers.__version__, "torch": torch.__version__})
        return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--graft", required=True)
    ap.add_argument("--model", required=True, action="append", help="a fine-tuned head model directory (graft finetune's OUT/best); repeatable")
    ap.add_argument("--inputs", help="one text per line, or JSON Lines {question, context} for QA (default: built-in ones)")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    lines = None if not a.inputs else [l.rstrip("\n") for l in open(a.inputs, encoding="utf-8") if l.strip()]
    ok = True
    for m in a.model:
        r = check(a.graft, m, lines, a.tolerance)
        print(json.dumps(r, ensure_ascii=False), flush=True)
        ok &= r["ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
