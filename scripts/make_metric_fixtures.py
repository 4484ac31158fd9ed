#!/usr/bin/env python3
"""Reference numbers for GraftTasks' metrics.

Writes Tests/GraftTasksTests/Fixtures/seqeval.json and squad.json:

- seqeval.json: generated (seeded) gold/predicted tag sequences, IOB2 and BIOES, including the
  edge cases (I- after O, I- of another type after B-, type changes inside an entity, all-O,
  empty predictions and empty gold, single-token entities, entities at sentence end, empty
  sentences), scored with the real `seqeval` package in strict mode
  (`precision_recall_fscore_support(..., mode='strict', scheme=IOB2 / IOBES)`, micro, macro,
  weighted and per type, plus the entities `Entities` extracts from each sentence).
- squad.json: predictions and gold answers (punctuation, articles, unicode, empty prediction,
  multiple gold answers, whitespace) scored with the official SQuAD v1.1 evaluation functions
  (`evaluate-v1.1.py`, verbatim in scripts/squad_v1.py).

Usage: pip install seqeval==1.2.2; python3 scripts/make_metric_fixtures.py
"""
import json
import os
import random
import sys
import warnings
from importlib.metadata import version

import seqeval
from seqeval.metrics.v1 import precision_recall_fscore_support
from seqeval.scheme import IOB2, IOBES, Entities

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from squad_v1 import exact_match_score, f1_score, metric_max_over_ground_truths, normalize_answer  # noqa: E402

warnings.filterwarnings("ignore")

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "GraftTasksTests", "Fixtures")


TYPES = ["PER", "LOC", "ORG", "MISC", "geo-loc"]


def random_tags(rng, n, scheme, noise):
    """A tag sequence: mostly valid entities, with `noise` probability of a random tag."""
    prefixes = ["B", "I"] if scheme == "iob2" else ["B", "I", "E", "S"]
    tags = []
    i = 0
    while i < n:
        r = rng.random()
        if r < noise:
            tags.append("O" if rng.random() < 0.3 else f"{rng.choice(prefixes)}-{rng.choice(TYPES)}")
            i += 1
        elif r < 0.55:
            tags.append("O")
            i += 1
        else:
            t = rng.choice(TYPES)
            length = min(rng.choice([1, 1, 2, 2, 3, 4]), n - i)
            if scheme == "iob2":
                tags += [f"B-{t}"] + [f"I-{t}"] * (length - 1)
            elif length == 1:
                tags.append(f"S-{t}")
            else:
                tags += [f"B-{t}"] + [f"I-{t}"] * (length - 2) + [f"E-{t}"]
            i += length
    return tags


def perturb(rng, tags, scheme):
    """A prediction: the gold with some tags changed."""
    prefixes = ["B", "I"] if scheme == "iob2" else ["B", "I", "E", "S"]
    out = list(tags)
    for k in range(len(out)):
        r = rng.random()
        if r < 0.08:
            out[k] = "O"
        elif r < 0.16:
            out[k] = f"{rng.choice(prefixes)}-{rng.choice(TYPES)}"
        elif r < 0.20 and out[k] != "O":
            out[k] = out[k][0] + "-" + rng.choice(TYPES)
    return out


EDGE_IOB2 = [
    ("I after O", [["O", "B-PER", "I-PER", "O"]], [["O", "I-PER", "I-PER", "O"]]),
    ("I of another type after B", [["B-PER", "I-PER", "O"]], [["B-PER", "I-LOC", "O"]]),
    ("type change inside entity", [["B-ORG", "I-ORG", "I-ORG"]], [["B-ORG", "I-ORG", "I-LOC"]]),
    ("all O", [["O", "O", "O"], ["O"]], [["O", "O", "O"], ["O"]]),
    ("empty predictions", [["B-PER", "O", "B-LOC"]], [["O", "O", "O"]]),
    ("empty gold", [["O", "O", "O"]], [["B-PER", "O", "B-LOC"]]),
    ("single-token entities", [["B-PER", "B-PER", "B-LOC"]], [["B-PER", "B-LOC", "B-LOC"]]),
    ("entity at sentence end", [["O", "O", "B-MISC", "I-MISC"]], [["O", "O", "B-MISC", "I-MISC"]]),
    ("entity at end cut short", [["O", "B-MISC", "I-MISC"]], [["O", "B-MISC", "O"]]),
    ("empty sentences", [[], ["B-PER"], []], [[], ["B-PER"], []]),
    ("I at sentence start", [["I-PER", "I-PER"]], [["I-PER", "I-PER"]]),
    ("B after B same type", [["B-PER", "B-PER"]], [["B-PER", "I-PER"]]),
    ("hyphenated type", [["B-geo-loc", "I-geo-loc", "O"]], [["B-geo-loc", "I-geo-loc", "O"]]),
    ("bare prefixes", [["B", "I", "O"]], [["B", "O", "O"]]),
    ("no entities anywhere", [["O"], []], [["O"], []]),
    ("perfect", [["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "B-LOC"]]),
]

EDGE_BIOES = [
    ("single S", [["S-PER", "O", "S-LOC"]], [["S-PER", "O", "B-LOC"]]),
    ("B without E", [["B-PER", "E-PER", "O"]], [["B-PER", "I-PER", "O"]]),
    ("E without B", [["B-PER", "E-PER"]], [["O", "E-PER"]]),
    ("type change inside", [["B-ORG", "I-ORG", "E-ORG"]], [["B-ORG", "I-LOC", "E-ORG"]]),
    ("entity at end", [["O", "B-MISC", "E-MISC"]], [["O", "B-MISC", "E-MISC"]]),
    ("unfinished at end", [["O", "B-MISC", "E-MISC"]], [["O", "B-MISC", "I-MISC"]]),
    ("all O", [["O", "O"]], [["O", "O"]]),
    ("empty predictions", [["S-PER", "B-LOC", "E-LOC"]], [["O", "O", "O"]]),
    ("empty gold", [["O", "O", "O"]], [["S-PER", "B-LOC", "E-LOC"]]),
    ("I after O", [["O", "I-PER", "E-PER"]], [["O", "I-PER", "E-PER"]]),
]


def score_case(name, scheme_name, gold, pred):
    scheme = IOB2 if scheme_name == "iob2" else IOBES
    case = {"name": name, "scheme": scheme_name, "gold": gold, "predicted": pred}
    p, r, f, s = precision_recall_fscore_support(gold, pred, average="micro", mode="strict", scheme=scheme)
    case["micro"] = {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
    p, r, f, s = precision_recall_fscore_support(gold, pred, average=None, mode="strict", scheme=scheme)
    et = Entities(gold, scheme)
    ep = Entities(pred, scheme)
    types = sorted(et.unique_tags | ep.unique_tags)
    case["types"] = types
    case["per_type"] = {t: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                        for i, t in enumerate(types)}
    if types:
        for avg in ["macro", "weighted"]:
            p, r, f, s = precision_recall_fscore_support(gold, pred, average=avg, mode="strict", scheme=scheme)
            case[avg] = {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s) if s is not None else None}
    case["gold_entities"] = [[[e.start, e.end, e.tag] for e in sent] for sent in et.entities]
    case["predicted_entities"] = [[[e.start, e.end, e.tag] for e in sent] for sent in ep.entities]
    return case


def make_seqeval(rng):
    cases = []
    for name, g, p in EDGE_IOB2:
        cases.append(score_case(name, "iob2", g, p))
    for name, g, p in EDGE_BIOES:
        cases.append(score_case(name, "bioes", g, p))
    for k in range(240):
        scheme = "iob2" if k % 3 else "bioes"
        sentences = rng.randint(1, 12)
        gold, pred = [], []
        for _ in range(sentences):
            n = rng.choice([0, 1, 2, 3, 5, 8, 13, 20])
            g = random_tags(rng, n, scheme, noise=0.1 if k % 4 == 0 else 0.0)
            gold.append(g)
            pred.append(perturb(rng, g, scheme) if rng.random() < 0.8 else random_tags(rng, n, scheme, noise=0.3))
        cases.append(score_case(f"random {k}", scheme, gold, pred))
    return cases


SQUAD_EDGE = [
    ("The Eiffel Tower", ["Eiffel Tower"]),
    ("the eiffel tower.", ["The Eiffel Tower"]),
    ("an apple a day", ["apple day"]),
    ("Theatre", ["the atre"]),
    ("anthem", ["an them"]),
    ("", ["Paris"]),
    ("Paris", [""]),
    ("", [""]),
    ("  Paris \t\n  France ", ["Paris France"]),
    ("Paris\u00a0France", ["Paris France"]),
    ("Zürich, Switzerland", ["zürich switzerland"]),
    ("ΟΔΥΣΣΕΥΣ", ["οδυσσευς"]),
    ("ΟΔΥΣΣΕΥΣ", ["οδυσσευσ"]),
    ("Straße", ["STRASSE"]),
    ("İstanbul", ["istanbul"]),
    ("“quoted” text", ["quoted text"]),
    ("U.S.A.", ["USA"]),
    ("1,000,000", ["1000000"]),
    ("a", ["the"]),
    ("the the the", ["the"]),
    ("Barack Obama", ["Obama", "Barack Hussein Obama", "President Obama"]),
    ("president", ["Obama", "the President"]),
    ("café", ["cafe\u0301"]),
    ("New York City", ["New York", "York City", "the city of New York"]),
    ("x_the_y", ["x the y"]),
    ("a_b", ["a b"]),
    ("Année", ["année"]),
    ("東京", ["東京都"]),
    ("東京 都", ["東京都"]),
    ("the\u2028end", ["end"]),
    ("x\u001cy", ["x y"]),
    ("x\u200by", ["xy"]),
    ("(a) the answer", ["answer"]),
    ("Mr. Smith's", ["mr smiths"]),
    ("1½ cups", ["1½ cup"]),
    ("an²", ["an"]),
    ("cats cats dogs", ["cats dogs dogs"]),
]

WORDS = ["the", "a", "an", "The", "Paris", "France", "river", "Nile", "1969", "Apollo", "11", "moon",
         "café", "Zürich", "東京", "Ω", "ΣΑΣ", "co-operation", "U.S.", "it's", "\"quoted\"", "(", ")",
         "-", "—", "naïve", "rock'n'roll", "3.14", "e.g.", "½", "Straße", "İ", "x_y", "an", "the"]
SEPARATORS = [" ", " ", " ", "  ", "\t", "\n", "\u00a0", ", ", ". ", "\u2009"]


def random_phrase(rng, n):
    out = ""
    for k in range(n):
        if k:
            out += rng.choice(SEPARATORS)
        out += rng.choice(WORDS)
    return out


def make_squad(rng):
    items = [{"prediction": p, "ground_truths": g} for p, g in SQUAD_EDGE]
    for _ in range(300):
        gold = [random_phrase(rng, rng.randint(1, 5)) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
        r = rng.random()
        if r < 0.2:
            pred = gold[0]
        elif r < 0.5:
            words = gold[0].split()
            k = rng.randint(0, len(words))
            pred = " ".join(words[:k] + [rng.choice(WORDS) for _ in range(rng.randint(0, 2))])
        elif r < 0.6:
            pred = ""
        else:
            pred = random_phrase(rng, rng.randint(1, 5))
        items.append({"prediction": pred, "ground_truths": gold})
    for it in items:
        it["normalized_prediction"] = normalize_answer(it["prediction"])
        it["exact_match"] = float(metric_max_over_ground_truths(exact_match_score, it["prediction"], it["ground_truths"]))
        it["f1"] = float(metric_max_over_ground_truths(f1_score, it["prediction"], it["ground_truths"]))
    # The official evaluate(): sums in order, then 100.0 * sum / total.
    em = f1 = 0
    for it in items:
        em += metric_max_over_ground_truths(exact_match_score, it["prediction"], it["ground_truths"])
        f1 += metric_max_over_ground_truths(f1_score, it["prediction"], it["ground_truths"])
    total = len(items)
    return {"items": items, "exact_match": 100.0 * em / total, "f1": 100.0 * f1 / total,
            "exact_match_fraction": em / total, "f1_fraction": f1 / total}


def main():
    rng = random.Random(20261130)
    os.makedirs(OUT, exist_ok=True)
    seq = {"generator": "scripts/make_metric_fixtures.py", "seqeval_version": version("seqeval"),
           "python": sys.version.split()[0], "cases": make_seqeval(rng)}
    with open(os.path.join(OUT, "seqeval.json"), "w", encoding="utf-8") as f:
        json.dump(seq, f, ensure_ascii=False, separators=(",", ":"))
    squad = {"generator": "scripts/make_metric_fixtures.py", "logic": "SQuAD v1.1 evaluate-v1.1.py (verbatim functions)",
             "python": sys.version.split()[0], "unicode": __import__("unicodedata").unidata_version}
    squad.update(make_squad(rng))
    with open(os.path.join(OUT, "squad.json"), "w", encoding="utf-8") as f:
        json.dump(squad, f, ensure_ascii=False, separators=(",", ":"))
    print(f"seqeval {seq['seqeval_version']}: {len(seq['cases'])} cases; squad: {len(squad['items'])} items")


if __name__ == "__main__":
    main()
