#!/usr/bin/env python3
"""Writes the demo model's CLIP BPE tokenizer (server/demo/config/tokenizer/)
from the words of the fill dataset's captions, so that every caption word is
one token.

It learns merges as engine/text/tokenizer_train.c does (`cnet init-model
--preset tiny`'s tokenizer, classic BPE of Sennrich et al. 2016): the words
are runs of ASCII letters, lower-cased, each ending in </w>; each round
merges the most frequent adjacent pair (ties to the smaller "first second"
string) until no pair is left. The files are laid out as CLIP's: ids 0..255
the byte-to-unicode symbols in code point order, 256..511 the same with
</w>, one id per new merge result, then <|startoftext|> and <|endoftext|>
(also pad and unk). It then checks, with CLIP's encoding loop (the
lowest-ranked pair first), that every word comes back as one token, and
prints the vocabulary size (text_encoder/config.json's vocab_size).

Not here: the colour table itself (engine/data/dataset_fill.c), whose names
WORDS repeats; tests/integration/demo_model_test.sh checks that every
caption of a made dataset encodes to whole words.

Usage: python3 server/demo/tokenizer_make.py OUT_DIR
"""
import json
import os
import re
import sys

# The words of "<colour> circle with <colour> background" for every colour
# of engine/data/dataset_fill.c's table.
WORDS = """red green blue yellow cyan magenta orange purple pink brown white black
gray light coral sea green navy gold teal olive sky blue circle with background"""
EOW = "</w>"
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode():
    """CLIP's byte -> printable code point map (openai/clip simple_tokenizer)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def learn(words):
    """Classic BPE over the distinct words with their counts."""
    counts = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    segs = {w: list(w[:-1]) + [w[-1] + EOW] for w in counts}
    merges = []
    while True:
        pairs = {}
        for w, s in segs.items():
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + counts[w]
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p[0], p[1]))
        merges.append(best)
        for w, s in segs.items():
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(s[i] + s[i + 1])
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            segs[w] = out


def encode_word(word, ranks):
    """CLIP's bpe(): merge the lowest-ranked adjacent pair until none is left."""
    s = list(word[:-1]) + [word[-1] + EOW]
    while len(s) > 1:
        pairs = [(ranks.get((a, b), len(ranks)), i) for i, (a, b) in enumerate(zip(s, s[1:]))]
        rank, i = min(pairs)
        if rank == len(ranks):
            break
        s[i:i + 2] = [s[i] + s[i + 1]]
    return s


def main(out):
    words = re.findall(r"[a-z]+", WORDS.lower())
    merges = learn(words)
    symbols = sorted(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(symbols)}
    vocab.update({c + EOW: 256 + i for i, c in enumerate(symbols)})
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    bos, eos = len(vocab), len(vocab) + 1
    vocab[BOS], vocab[EOS] = bos, eos
    ranks = {m: r for r, m in enumerate(merges)}
    for w in sorted(set(words)):
        got = encode_word(w, ranks)
        if got != [w + EOW]:
            sys.exit(f"tokenizer_make: '{w}' encodes to {got}, not one token")

    def attrs(content, special):
        a = {"content": content, "lstrip": False, "normalized": True, "rstrip": False,
             "single_word": False}
        if special:
            a["special"] = True
        return a

    config = {
        "added_tokens_decoder": {str(bos): attrs(BOS, True), str(eos): attrs(EOS, True)},
        "bos_token": BOS, "clean_up_tokenization_spaces": True, "eos_token": EOS,
        "errors": "replace", "model_max_length": 77, "pad_token": EOS,
        "tokenizer_class": "CLIPTokenizer", "unk_token": EOS,
    }
    special = {k: attrs(v, False) for k, v in
               (("bos_token", BOS), ("eos_token", EOS), ("pad_token", EOS), ("unk_token", EOS))}
    os.makedirs(out, exist_ok=True)
    for name, obj in (("vocab.json", vocab), ("tokenizer_config.json", config),
                      ("special_tokens_map.json", special)):
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")
    with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    print(len(vocab))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tokenizer_make.py OUT_DIR")
    main(sys.argv[1])
