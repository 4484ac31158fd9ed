#!/usr/bin/env python3
"""Builds the HuggingFace parity fixtures of Graft's task heads.

For each of BertForSequenceClassification, BertForTokenClassification,
BertForQuestionAnswering, GPT2ForSequenceClassification and GPT2ForTokenClassification:
a tiny random model (fixed seed, num_labels 3 (2 for QA: start and end), dropout 0, weights redrawn at a larger scale
than HF's 0.02 so that the logits are far from uniform) is saved with `save_pretrained`
(config.json + model.safetensors) into Tests/GraftModelsTests/Fixtures/heads/<name>/, with
`reference.safetensors` holding a right-padded batch (input_ids, attention_mask,
token_type_ids, labels / start_positions / end_positions as int64), the logits, the loss and
the gradients of a few parameters (named `grad.<Graft parameter name>`, GPT-2 Conv1D gradients
transposed to Graft's [out, in] layout).

Usage: python scripts/make_head_fixtures.py   (needs torch, transformers, safetensors)
"""
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import (BertConfig, BertForQuestionAnswering, BertForSequenceClassification,
                          BertForTokenClassification, GPT2Config, GPT2ForSequenceClassification,
                          GPT2ForTokenClassification)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "GraftModelsTests", "Fixtures", "heads")
B, T, VOCAB, LABELS = 3, 8, 30, 3
LENGTHS = [8, 5, 3]


def bert_config(labels=LABELS):
    return BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=16, type_vocab_size=2,
                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=0,
                      num_labels=labels)


def gpt_config():
    return GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=2, n_head=2, n_inner=32, n_positions=16,
                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, classifier_dropout=0.0,
                      pad_token_id=0, num_labels=LABELS)


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            base = 1.0 if ("LayerNorm.weight" in name or ".ln_" in name and name.endswith("weight")) else 0.0
            p.copy_(base + 0.3 * torch.randn(p.shape, generator=g))


def batch(seed, segments):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (B, T), generator=g)   # real tokens never use the pad id 0
    mask = torch.zeros(B, T, dtype=torch.long)
    types = torch.zeros(B, T, dtype=torch.long)
    for b, n in enumerate(LENGTHS):
        mask[b, :n] = 1
        ids[b, n:] = 0
        if segments:
            types[b, n // 2:n] = 1
    return ids, mask, types


def grads(model, names, conv1d=()):
    params = dict(model.named_parameters())
    out = {}
    for hf, graft in names:
        g = params[hf].grad.detach().clone()
        if graft.split(".")[-2] in conv1d:
            g = g.t()
        out["grad." + graft] = g.contiguous().float()
    return out


def write(name, model, tensors):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(d, extra)):
            os.remove(os.path.join(d, extra))
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(d, "reference.safetensors"))
    print(name, {k: tuple(v.shape) for k, v in tensors.items() if not k.startswith("grad.")}, "loss", float(tensors["loss"][0]))


def main():
    torch.manual_seed(0)
    bert_grads = [("bert.embeddings.LayerNorm.weight", "embeddings.LayerNorm.weight"),
                  ("bert.encoder.layer.0.attention.self.query.weight", "encoder.layer.0.attention.self.query.weight")]

    # Sequence classification through the pooler.
    m = BertForSequenceClassification(bert_config()); randomize(m, 1); m.eval()
    ids, mask, types = batch(11, segments=True)
    labels = torch.tensor([0, 2, 1])
    out = m(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels)
    out.loss.backward()
    write("bert_sequence", m, dict(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels,
                                   logits=out.logits.detach(), loss=out.loss.detach().reshape(1),
                                   **grads(m, bert_grads + [("classifier.weight", "classifier.weight"),
                                                            ("bert.pooler.dense.weight", "pooler.dense.weight")])))

    # Token classification: -100 on padding and on one real position.
    m = BertForTokenClassification(bert_config()); randomize(m, 2); m.eval()
    ids, mask, types = batch(12, segments=False)
    g = torch.Generator().manual_seed(13)
    labels = torch.randint(0, LABELS, (B, T), generator=g)
    labels[mask == 0] = -100
    labels[0, 0] = -100
    out = m(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels)
    out.loss.backward()
    write("bert_token", m, dict(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels,
                                logits=out.logits.detach(), loss=out.loss.detach().reshape(1),
                                **grads(m, bert_grads + [("classifier.weight", "classifier.weight")])))

    # Question answering: a negative start (clamped to 0) and an end beyond T (ignored).
    m = BertForQuestionAnswering(bert_config(labels=2))   # qa_outputs: start, end; randomize(m, 3); m.eval()
    ids, mask, types = batch(14, segments=True)
    start, end = torch.tensor([1, 2, -1]), torch.tensor([4, 2, 20])
    out = m(input_ids=ids, attention_mask=mask, token_type_ids=types, start_positions=start, end_positions=end)
    out.loss.backward()
    write("bert_qa", m, dict(input_ids=ids, attention_mask=mask, token_type_ids=types, start_positions=start,
                             end_positions=end, start_logits=out.start_logits.detach(), end_logits=out.end_logits.detach(),
                             loss=out.loss.detach().reshape(1),
                             **grads(m, bert_grads + [("qa_outputs.weight", "qa_outputs.weight")])))

    gpt_grads = [("transformer.ln_f.weight", "ln_f.weight"), ("transformer.h.0.attn.c_attn.weight", "h.0.attn.c_attn.weight")]
    conv = ("c_attn", "c_proj", "c_fc")

    m = GPT2ForSequenceClassification(gpt_config()); randomize(m, 4); m.eval()
    ids, mask, _ = batch(15, segments=False)
    labels = torch.tensor([2, 0, 1])
    out = m(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    write("gpt2_sequence", m, dict(input_ids=ids, attention_mask=mask, labels=labels, logits=out.logits.detach(),
                                   loss=out.loss.detach().reshape(1),
                                   **grads(m, gpt_grads + [("score.weight", "score.weight")], conv)))

    m = GPT2ForTokenClassification(gpt_config()); randomize(m, 5); m.eval()
    ids, mask, _ = batch(16, segments=False)
    g = torch.Generator().manual_seed(17)
    labels = torch.randint(0, LABELS, (B, T), generator=g)
    labels[mask == 0] = -100
    out = m(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    write("gpt2_token", m, dict(input_ids=ids, attention_mask=mask, labels=labels, logits=out.logits.detach(),
                                loss=out.loss.detach().reshape(1),
                                **grads(m, gpt_grads + [("classifier.weight", "classifier.weight")], conv)))


if __name__ == "__main__":
    sys.exit(main())
