#!/usr/bin/env python3
"""Checks that a sequence-classification model fine-tuned by Graft, exported with `graft export`,
loads in transformers' AutoModelForSequenceClassification and gives the same class probabilities
as `graft classify` on the same sentences (Graft prints probabilities rounded to 1e-6).

    python3 scripts/check_hf_heads.py --graft .build/release/graft --model RUN/best [--sentences FILE]

Prints one JSON object: sentences, max_abs_probability_difference, labels_agree.
Needs: pip install torch transformers safetensors
"""
import argparse, json, os, subprocess, sys, tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT = ["A gorgeous, funny and deeply moving film.", "The plot is thin and the jokes fall flat.",
           "Naïve, overlong, but the café scenes in Zürich are lovely.", "It is neither good nor bad.",
           "An utterly forgettable sequel that wastes a fine cast."]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--graft", required=True)
    ap.add_argument("--model", required=True, help="a graft finetune OUT/best directory (sequence classification)")
    ap.add_argument("--sentences", help="one sentence per line (default: a few built-in ones)")
    a = ap.parse_args()
    sentences = DEFAULT if not a.sentences else [l.rstrip("\n") for l in open(a.sentences, encoding="utf-8") if l.strip()]
    import torch
    from transformers import AutoModelForSequenceClassification
    from tokenizers import Tokenizer
    with tempfile.TemporaryDirectory() as hf:
        subprocess.run([a.graft, "export", "--model", a.model, "--out", hf], check=True, stdout=subprocess.DEVNULL)
        model = AutoModelForSequenceClassification.from_pretrained(hf).eval()
        tok = Tokenizer.from_file(os.path.join(hf, "tokenizer.json"))
        tok.no_padding(); tok.no_truncation()
        out = subprocess.run([a.graft, "classify", "--model", a.model], input="\n".join(sentences) + "\n",
                             capture_output=True, text=True, check=True).stdout.splitlines()
        worst, agree = 0.0, True
        for s, line in zip(sentences, out):
            g = json.loads(line)
            ids = tok.encode(s).ids
            with torch.no_grad():
                p = torch.softmax(model(torch.tensor([ids])).logits[0], -1).tolist()
            labels = [model.config.id2label[i] for i in range(len(p))]
            for label, v in zip(labels, p):
                worst = max(worst, abs(v - g["scores"][label]))
            agree &= labels[max(range(len(p)), key=p.__getitem__)] == g["label"]
        print(json.dumps({"sentences": len(sentences), "max_abs_probability_difference": worst, "labels_agree": agree,
                          "transformers": __import__("transformers").__version__, "torch": torch.__version__}))
        return 0 if worst <= 1e-4 and agree else 1


if __name__ == "__main__":
    sys.exit(main())
