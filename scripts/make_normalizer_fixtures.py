"""Reference outputs of the Unicode normalization forms for Graft's normalizer tests, made with
Python's unicodedata (Python 3.11: Unicode 15.0, the version of Debian 12's utf8proc 2.8) and
HuggingFace tokenizers 0.23.3's normalizers (NFC/NFD/NFKC/NFKD, StripAccents, Lowercase), with
HF's alignment of every normalized character to the original ones for the forms that do not
compose (also Lowercase then NFD: "İ" lowercases to i + U+0307 before the reordering; `<form>_align`: [start, end) per normalized scalar, read as the offsets of one-character
tokens). Composition is left out: HF gives a composed character its first part's range, Graft the
union of its parts' ranges (so a span never drops the accent it absorbed).
Writes Tests/GraftTokenizersTests/Fixtures/normalizers.jsonl. Run from the repository root.
"""
import json
import random
import unicodedata
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

texts = [
    "café", "cafe\u0301", "Ångström", "A\u030a", "ﬁ ﬂ ﬀ", "①②③ ㎏ ㍻", "Ｆｕｌｌ－ｗｉｄｔｈ", "한국어", "\u1112\u1161\u11ab",
    "e\u0301\u0327", "e\u0327\u0301", "a\u0323\u0302\u0301", "ǅungla", "ΣΊΣΥΦΟΣ", "İstanbul", "Straße",
    "x\u0308\u0323y", "\u0b47\u0b3e", "Ḕ\u0323", "ﷺ", "¼ ½ ¾", "x² y³", "\u00a0\u2002\u3000", "🤗 e\u0301",
    "\u0041\u030a\u0301", "\u1e9b\u0323", "\u0958\u0959", "\ufb2c",
    "q\u0307\u0323", "\u05e9\u05c1\u05bc\u05b8", "\u0345\u0301", "a\u0301\u0345b", "Jose\u0301", "\u0130\u0323x",
]
rng = random.Random(7)
pools = [(0x41, 0x7A), (0xC0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x1100, 0x11FF), (0xAC00, 0xAC40),
         (0x1E00, 0x1EFF), (0x2460, 0x24FF), (0xFB00, 0xFB4F), (0xFF01, 0xFF5E), (0x3300, 0x33FF), (0x900, 0x97F)]
for _ in range(200):
    s = "".join(chr(rng.randint(*pools[rng.randrange(len(pools))])) for _ in range(rng.randint(1, 12)))
    texts.append(s)

hf = {name: getattr(normalizers, name)() for name in ("NFC", "NFD", "NFKC", "NFKD", "Lowercase")}
hf["StripAccents"] = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents()])
hf["LowercaseNFD"] = normalizers.Sequence([normalizers.Lowercase(), normalizers.NFD()])


def alignments(normalizer, text):
    t = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    t.normalizer = normalizer
    t.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    return [list(o) for o in t.encode(text).offsets]


with open("Tests/GraftTokenizersTests/Fixtures/normalizers.jsonl", "w", encoding="utf-8") as f:
    for t in texts:
        row = {"text": t}
        for form in ("NFC", "NFD", "NFKC", "NFKD"):
            row[form.lower()] = unicodedata.normalize(form, t)
            assert hf[form].normalize_str(t) == row[form.lower()], (form, t)
        row["lowercase"] = hf["Lowercase"].normalize_str(t)
        row["strip_accents"] = hf["StripAccents"].normalize_str(t)
        row["lowercase_nfd"] = hf["LowercaseNFD"].normalize_str(t)
        for key, name in (("nfd", "NFD"), ("nfkd", "NFKD"), ("lowercase", "Lowercase"), ("strip_accents", "StripAccents"),
                          ("lowercase_nfd", "LowercaseNFD")):
            row[key + "_align"] = alignments(hf[name], t)
            assert len(row[key + "_align"]) == len(row[key]), (key, t)
        f.write(json.dumps(row, ensure_ascii=True) + "\n")
print(len(texts), "lines")
