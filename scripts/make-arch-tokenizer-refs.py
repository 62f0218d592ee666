#!/usr/bin/env python3
"""Tokenizer references of the issue-28 styles for tests/test_io_arch_tokenizers.cpp.

For each style a small byte-level BPE is trained with HF `tokenizers` on a built-in mixed
text, with that family's pre-tokenizer regex, added/special tokens and post-processor:
  llama3: Split(Llama-3 regex, Isolated) + ByteLevel(use_regex=False); <|begin_of_text|> BOS
          added by a TemplateProcessing post-processor; <|eot_id|> etc. special.
  qwen2:  NFC normalizer; Split(Qwen2 regex: single digits) + ByteLevel(use_regex=False); no
          BOS; <|endoftext|>, <|im_start|>, <|im_end|> special (tokenizer_config: eos
          <|im_end|>, add_bos_token false).
  mistral: a SentencePiece BPE (tokenizer.model) trained like Mistral's / Llama-2's
          (byte_fallback, split_digits, identity normalization, extra whitespace kept, dummy
          prefix; 1,000 pieces), converted to tokenizer.json by transformers' LlamaTokenizer
          from a directory holding tokenizer.model and a tokenizer_config.json like Mistral's
          ("legacy": false, add_bos_token true): Metaspace(prepend_scheme "first"), no
          normalizer, <unk> <s> </s> special added tokens, BOS by post-processor. transformers
          5 builds every LlamaTokenizer this way (the non-legacy conversion of 4.x).
Writes tests/data/arch/tok-<style>.json: {"tokenizer": <tokenizer.json>, "tokenizer_config":
{...}, "text": TEXT (>= 2,000 characters: scripts, digits, whitespace runs, special tokens),
"ids": tokenizers' ids with special tokens added}. mistral also writes tok-mistral.model and,
in its json, "spm_ids": llama.cpp's SPM semantics computed with the sentencepiece library (BOS,
then the text split at <unk> <s> </s>, each piece of text encoded by sentencepiece with its
dummy prefix, each special as its id) and "plain_text" / "plain_ids" (the text without the
special tokens, sentencepiece's ids without BOS: for decoding round trips).
Needs: pip install tokenizers (mistral: sentencepiece transformers protobuf)
"""
import json
import os
import re
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


# Not in TRAIN: Arabic and a few symbols reach the model only through its <0xXX> byte pieces.
MISTRAL_EXTRA = (
    "\nArabic: مرحبا بالعالم، هذا اختبار للترميز. العدد ٣٤٥ والرقم 678.\n"
    "Byte fallback: ☃ ♞ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ﷺ and a lone é.\n"
    "<s>[INST] What is 2+2? [/INST] It is 4.</s> <s> spaced after</s>\n"
    "An <unk> inline, <unk><unk> twice, and </s>< s> near misses <s\n"
    "  two leading spaces\t\ttabs\n\n\n   three newlines above\n"
    "The end.</s>")


def build_mistral(out):
    import io
    import tempfile

    import sentencepiece as spm
    from transformers import AutoTokenizer

    buf = io.BytesIO()
    lines = "\n".join(TRAIN * 4).split("\n")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=buf, model_type="bpe", vocab_size=1000,
        byte_fallback=True, split_digits=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=True, allow_whitespace_only_pieces=True,
        character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1,
        max_sentencepiece_length=16, hard_vocab_limit=False, minloglevel=2)
    model = buf.getvalue()
    cfg = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
           "unk_token": "<unk>", "legacy": False, "tokenizer_class": "LlamaTokenizer",
           "clean_up_tokenization_spaces": False, "spaces_between_special_tokens": False}
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "tokenizer.model"), "wb") as f:
            f.write(model)
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump(cfg, f)
        hf = AutoTokenizer.from_pretrained(d)
    tj = json.loads(hf.backend_tokenizer.to_str())
    assert tj["pre_tokenizer"]["type"] == "Metaspace" and tj["pre_tokenizer"]["prepend_scheme"] == "first", tj["pre_tokenizer"]
    tok = Tokenizer.from_str(hf.backend_tokenizer.to_str())  # the plain `tokenizers` library
    text = TEXT.replace("<|SPECIAL_A|>", "<s>").replace("<|SPECIAL_B|>", "</s>") + MISTRAL_EXTRA
    assert len(text) >= 2000, len(text)
    ids = tok.encode(text, add_special_tokens=True).ids
    assert ids == hf.encode(text), "tokenizers and transformers disagree"

    sp = spm.SentencePieceProcessor(model_proto=model)
    specials = {"<unk>": 0, "<s>": 1, "</s>": 2}
    pat = re.compile("|".join(re.escape(s) for s in specials))
    spm_ids, plain, pos = [1], "", 0
    for m in pat.finditer(text):
        if m.start() > pos:
            spm_ids += sp.encode(text[pos:m.start()])
            plain += text[pos:m.start()]
        spm_ids.append(specials[m.group()])
        pos = m.end()
    spm_ids += sp.encode(text[pos:])
    plain += text[pos:]
    assert sp.decode(sp.encode(plain)) == plain
    with open(os.path.join(out, "tok-mistral.model"), "wb") as f:
        f.write(model)
    return {"style": "mistral", "tokenizer": tj, "tokenizer_config": cfg, "text": text, "ids": ids,
            "spm_ids": spm_ids, "plain_text": plain, "plain_ids": sp.encode(plain)}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/arch"
    styles = sys.argv[2:] or ["llama3", "qwen2", "mistral"]
    for style in styles:
        r = build_mistral(out) if style == "mistral" else build(style)
        with open(os.path.join(out, f"tok-{style}.json"), "w") as f:
            json.dump(r, f, ensure_ascii=False, separators=(",", ":"))
        print(style, len(r["text"]), "chars", len(r["ids"]), "ids",
              *(["spm", len(r["spm_ids"]), "ids"] if "spm_ids" in r else []))


if __name__ == "__main__":
    main()
