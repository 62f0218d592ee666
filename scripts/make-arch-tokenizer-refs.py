#!/usr/bin/env python3
"""Tokenizer references of the issue-28 styles for tests/test_io_arch_tokenizers.cpp.

For each style a small byte-level BPE is trained with HF `tokenizers` on a built-in mixed
text, with that family's pre-tokenizer regex, added/special tokens and post-processor:
  llama3: Split(Llama-3 regex, Isolated) + ByteLevel(use_regex=False); <|begin_of_text|> BOS
          added by a TemplateProcessing post-processor; <|eot_id|> etc. special.
  qwen2:  NFC normalizer; Split(Qwen2 regex: single digits) + ByteLevel(use_regex=False); no
          BOS; <|endoftext|>, <|im_start|>, <|im_end|> special (tokenizer_config: eos
          <|im_end|>, add_bos_token false).
Writes tests/data/arch/tok-<style>.json: {"tokenizer": <tokenizer.json>, "tokenizer_config":
{...}, "text": TEXT (>= 2,000 characters: scripts, digits, whitespace runs, special tokens),
"ids": tokenizers' ids with special tokens added}.
Needs: pip install tokenizers
"""
import json
import os
import sys

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers.processors import TemplateProcessing

LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

TRAIN = [
    "The quick brown fox jumps over the lazy dog. It's 2024; they're testing 12345 tokens.",
    "Der schnelle braune Fuchs springt über den faulen Hund. Ça va? Très bien, merci!",
    "Быстрая коричневая лиса прыгает через ленивую собаку. Привет, мир!",
    "敏捷的棕色狐狸跳过了懒狗。你好，世界！東京は日本の首都です。",
    "빠른 갈색 여우가 게으른 개를 뛰어넘습니다. 안녕하세요 세계!",
    "Η γρήγορη καφέ αλεπού πηδάει πάνω από το τεμπέλικο σκυλί.",
    "def main():\n    return [x**2 for x in range(10)]  # squares\n\tprint('done')\n",
    "Prices: $3.14, €2,718.28, ¥1000 — 50% off!!! Call +1-555-0100 now.",
    "Emoji: 😀🎉👍🏽 and symbols ∑∫√∞ ≤ ≥ ≠ → ← ★☆",
]
TEXT = "\n".join(TRAIN * 4) + (
    "\n\n   Whitespace   runs\t\tand\ttabs   \r\n\r\n  trailing   \n"
    "Numbers 1234567890 0.001 1e-9 3,141,592 and years 1999-2025.\n"
    "<|SPECIAL_A|>chat turn<|SPECIAL_B|> after special\n"
    "don't DON'T I'LL we've   She'd   it's\n")


def build(style):
    tok = Tokenizer(models.BPE())
    regex = LLAMA3 if style == "llama3" else QWEN2
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    if style == "qwen2":
        tok.normalizer = normalizers.NFC()
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    else:
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                    "<|end_header_id|>", "<|eot_id|>"]
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TRAIN * 4, trainer)
    if style == "llama3":
        bos = "<|begin_of_text|>"
        tok.post_processor = TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A $B",
                                                special_tokens=[(bos, tok.token_to_id(bos))])
        cfg = {"bos_token": bos, "eos_token": "<|eot_id|>"}
        text = TEXT.replace("<|SPECIAL_A|>", "<|start_header_id|>").replace("<|SPECIAL_B|>", "<|eot_id|>")
    else:
        cfg = {"bos_token": None, "eos_token": "<|im_end|>", "add_bos_token": False}
        text = TEXT.replace("<|SPECIAL_A|>", "<|im_start|>").replace("<|SPECIAL_B|>", "<|im_end|>")
    assert len(text) >= 2000, len(text)
    ids = tok.encode(text, add_special_tokens=True).ids
    return {"style": style, "tokenizer": json.loads(tok.to_str()), "tokenizer_config": cfg,
            "text": text, "ids": ids}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/arch"
    for style in ("llama3", "qwen2"):
        r = build(style)
        with open(os.path.join(out, f"tok-{style}.json"), "w") as f:
            json.dump(r, f, ensure_ascii=False, separators=(",", ":"))
        print(style, len(r["text"]), "chars", len(r["ids"]), "ids")


if __name__ == "__main__":
    main()
