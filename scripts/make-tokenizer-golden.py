#!/usr/bin/env python3
"""Golden token ids for lrc's byte-level BPE tokenizer (tests/test_io_bpe_golden.cpp).

Builds the Hugging Face `tokenizers` tokenizer exactly as HF loads SmolLM2's tokenizer.json
(BPE from the GGUF's vocabulary and merges; pre-tokenizer Digits(individual_digits) then
ByteLevel(add_prefix_space=False, use_regex=True); the 17 special tokens as added tokens;
ByteLevel decoder), then encodes
  - a list of hard strings (numbers, contractions, whitespace runs, non-ASCII, CJK, emoji,
    special tokens): full ids are written,
  - every line of wikitext2-test.txt as line + "\\n" (lrc's no-BOS eval protocol): only a
    digest per line (token count + 64-bit FNV-1a of the ids as little-endian int32), so no
    dataset text lands in the repository,
  - the whole file at once: one digest.

Usage: scripts/make-tokenizer-golden.py [--gguf FILE] [--data FILE] [--out FILE]
       scripts/make-tokenizer-golden.py --show-line N     (HF's ids for one line)
Needs: pip install tokenizers   (the GGUF is read by a small parser below; `gguf` not needed)
"""
import argparse
import hashlib
import json
import os
import struct
import sys

from tokenizers import Regex, Tokenizer
from tokenizers import pre_tokenizers as pre

HARD_STRINGS = [
    "1234567",
    "3.14",
    "pi is 3.14159, e is 2.71828",
    "don't I'll we've they're she's it'd you'll",
    "DON'T I'LL",
    "multiple   spaces  between    words",
    "  leading spaces",
    "trailing spaces   ",
    "tabs\tand\t\ttabs",
    "new\nlines\n\n\nend\n",
    "\r\nwindows\r\nline endings",
    "naïve café Straße Ünïcödé",
    "日本語のテキストです。",
    "中文测试，标点符号！",
    "한국어 텍스트",
    "👍🏽 emoji 🎉 family 👨‍👩‍👧‍👦",
    "mixed: Hello, World! 123 + 4.5e-6 = ?",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|><|endoftext|>text<|im_end|>",
    "almost <|im_start special <|im_end",
    "CAPS'S 'quoted' \"double\" `back`",
    "x=1;y=22;z=333;w=4444",
    "$100.00 & 50% off!!!",
    " = Robert <unk> = \n",
    " @-@ <unk> @,@ 1 @.@ 5",
    "a\u00a0b nbsp",
    "ideographic\u3000space",
    "zero\u200bwidth",
    "next\u0085line",
    "line\u2028separator",
    "vertical\u000btab\u000cformfeed",
    "٣٤٥ arabic-indic digits",
    "Ⅻ roman ½ fraction ² superscript",
    "   ",
    " ",
    "\n",
    "0",
    "",
    "a" * 300,
    "  \n  \n",
    "def f(x):\n    return x ** 2  # comment\n",
    "https://example.com/path?q=1&r=2",
    "ÀÉÎÕÜ àéîõü ñ ç ø å",
    "Ελληνικά кириллица עברית العربية",
]


def read_gguf_vocab(path):
    """tokens, token types and merges from a GGUF file (v2/v3, little-endian)."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        s = data[pos:pos + n].decode("utf-8")
        pos += n
        return s

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t in scalar:
            return take(scalar[t])
        if t == 8:
            return string()
        if t == 9:
            et = take("I")
            return [value(et) for _ in range(take("Q"))]
        raise ValueError(f"{path}: unknown GGUF value type {t}")

    if data[:4] != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file")
    pos = 4
    version = take("I")
    if version not in (2, 3):
        raise ValueError(f"{path}: GGUF version {version}")
    take("Q")  # tensor count
    kv = {}
    for _ in range(take("Q")):
        key = string()
        kv[key] = value(take("I"))
    return kv


def smollm2_tokenizer_json(kv):
    tokens = kv["tokenizer.ggml.tokens"]
    types = kv["tokenizer.ggml.token_type"]
    merges = kv["tokenizer.ggml.merges"]
    assert kv.get("tokenizer.ggml.pre") == "smollm", kv.get("tokenizer.ggml.pre")
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                  "use_regex": True}
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}
             for i, (t, ty) in enumerate(zip(tokens, types)) if ty == 3]
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True}, byte_level]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False,
                           "trim_offsets": False, "use_regex": True},
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False,
                  "vocab": {t: i for i, t in enumerate(tokens)},
                  "merges": merges},
    }


LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def pre_tokenizer_pieces():
    """HF's pre-tokenization of the hard strings (byte-level form) for each pre-tokenizer lrc
    implements (names as in lrc::pre_tokenizer_steps; gpt2_prefix = ByteLevel with
    add_prefix_space)."""
    pts = {
        "smollm": pre.Sequence([pre.Digits(individual_digits=True),
                                pre.ByteLevel(add_prefix_space=False, use_regex=True)]),
        "gpt2": pre.ByteLevel(add_prefix_space=False, use_regex=True),
        "gpt2_prefix": pre.ByteLevel(add_prefix_space=True, use_regex=True),
        "llama3": pre.Sequence([pre.Split(Regex(LLAMA3_PATTERN), behavior="isolated"),
                                pre.ByteLevel(add_prefix_space=False, use_regex=False)]),
    }
    return {name: [[p for p, _ in pt.pre_tokenize_str(s)] for s in HARD_STRINGS]
            for name, pt in pts.items()}


def fnv1a64(ids):
    h = 0xcbf29ce484222325
    for b in struct.pack(f"<{len(ids)}i", *ids):
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    cache = os.environ.get("LRC_CACHE", os.path.expanduser("~/.cache/lrc"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = os.path.normpath(os.path.join(here, ".."))
    ap.add_argument("--gguf", default=os.path.join(cache, "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--data", default=os.path.normpath(os.path.join(
        root, "..", "shared", "data", "wikitext2-test.txt")))
    ap.add_argument("--out", default=os.path.join(root, "tests", "data",
                                                  "smollm2_tokenizer_golden.json"))
    ap.add_argument("--show-line", type=int, metavar="N",
                    help="print HF's ids for line N (0-based) of --data and exit (for a test "
                         "failure report)")
    args = ap.parse_args()

    kv = read_gguf_vocab(args.gguf)
    tok = Tokenizer.from_str(json.dumps(smollm2_tokenizer_json(kv)))

    if args.show_line is not None:
        with open(args.data, "rb") as f:
            line = f.read().decode("utf-8").split("\n")[args.show_line]
        print(json.dumps(tok.encode(line + "\n", add_special_tokens=False).ids))
        return

    hard = [{"text": s, "ids": tok.encode(s, add_special_tokens=False).ids} for s in HARD_STRINGS]
    for h in hard:  # the ByteLevel decoder gives the text back
        assert tok.decode(h["ids"], skip_special_tokens=False) == h["text"], h["text"]

    with open(args.data, "rb") as f:
        text = f.read().decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    encs = tok.encode_batch([l + "\n" for l in lines], add_special_tokens=False)
    digests = [[len(e.ids), format(fnv1a64(e.ids), "016x")] for e in encs]
    whole = tok.encode(text, add_special_tokens=False).ids

    out = {
        "generator": "scripts/make-tokenizer-golden.py",
        "tokenizers_version": __import__("tokenizers").__version__,
        "gguf_sha256": sha256(args.gguf),
        "data_file": os.path.basename(args.data),
        "data_sha256": sha256(args.data),
        "line_protocol": "each line (split on \\n, final empty piece dropped) encoded as line + \"\\n\"",
        "digest": "token count and FNV-1a 64 of the ids as little-endian int32",
        "hard_strings": hard,
        "pre_tokenizer_pieces": pre_tokenizer_pieces(),
        "lines": digests,
        "whole_file": [len(whole), format(fnv1a64(whole), "016x")],
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"{args.out}: {len(hard)} hard strings, {len(digests)} lines, "
          f"{sum(d[0] for d in digests)} tokens, whole file {len(whole)} tokens",
          file=sys.stderr)


if __name__ == "__main__":
    main()
