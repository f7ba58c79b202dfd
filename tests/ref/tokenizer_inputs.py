#!/usr/bin/env python3
"""Writes the adversarial inputs of the tokenizer tests into a directory.

    tokenizer_inputs.py OUT_DIR DATA_DIR SEED

valid/*.txt are UTF-8 (compared with tiktoken directly), invalid/*.bin are
not (compared with the tiktoken-bytes reference of tests/ref/tokenize_ref.cjs).
The random ones change with SEED; the test passes a fresh seed and prints it.
"""
import os
import random
import sys

out, data, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(seed)
os.makedirs(os.path.join(out, "valid"), exist_ok=True)
os.makedirs(os.path.join(out, "invalid"), exist_ok=True)


def valid(name, text):
    with open(os.path.join(out, "valid", name + ".txt"), "w", encoding="utf-8", newline="") as f:
        f.write(text)


def invalid(name, data_bytes):
    with open(os.path.join(out, "invalid", name + ".bin"), "wb") as f:
        f.write(data_bytes)


def read(rel):
    with open(os.path.join(data, rel), encoding="utf-8", newline="") as f:
        return f.read()


shakespeare = read("tinyshakespeare/input.txt")
book = read("gutenberg/valid/" + sorted(os.listdir(os.path.join(data, "gutenberg/valid")))[0])

valid("empty", "")
valid("one_space", " ")
valid("spaces", "".join("a" + " " * k + "b\n" for k in range(1, 41)) + " " * 7 + "lead\ntrail" + " " * 9)
valid("space_runs_end", "x" + " " * 33)
valid("newlines", "".join("p" + "\n" * k + "q" for k in range(1, 30)) + "\n" * 12)
valid("tabs", "".join("\t" * k + "t" + " \t" * k for k in range(1, 20)) + "\t\t\n\t")
valid("mixed_space", " \t\n\r\x0b\x0c \u00a0\u1680\u2000\u2009\u200a\u2028\u2029\u202f\u205f\u3000\x85 x \u180e y \ufeff z")
valid("crlf", shakespeare[:30000].replace("\n", "\r\n"))
valid("cr_only", shakespeare[:5000].replace("\n", "\r"))
valid("emoji", "I 😀 love 👍🏽 emoji 🇺🇸🇯🇵 👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 🧑🏿‍🚀 astronaut, ❤️‍🔥 fire; #️⃣ 1️⃣\n" * 5)
valid("cjk", "日本語のテキストと漢字。中文文本，标点符号！한국어 텍스트입니다. 繁體中文測試 ｆｕｌｌｗｉｄｔｈ １２３\n" * 4)
valid("scripts", "Ελληνικά кириллица עברית العربية हिन्दी ไทย ქართული Ⴀ ᚠᚢᚦ 𐌰𐌱 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 Ⅻ ½ ²³ ٣٤٥ ߁߂\n" * 3)
valid("combining", "e\u0301 a\u0308\u0304 Z\u0351\u0362\u0300\u0316\u0317 n\u0303o\u0323\u031b \u0301lead q\u20dd \u0e01\u0e34\u0e4a\n" * 6)
valid("contractions", "it's don't we're they've I'm you'll he'd IT'S DON'T ' s 'sss ''s 'x '123 ’s \"quoted\" x'y'z 's't're've'm'll'd\n" * 4)
valid("numbers", "0 12 345 6789 1,000,000.50 -3.14e-10 0x1F 1st 2nd 3rd 007 ١٢٣٤ ۱۲ १२३ 一二三 ①② Ⅳ 10000000000000000000\n" * 4)
valid("punctuation", "!!! ??? ... --- *** ((( ))) [[[]]] {{{}}} <<<>>> @#$%^&*_+=|\\/~`  ,;: «» „“ ‘’ • — – … ¿¡\n" * 4)
valid("nul_and_controls", "a\x00b\x00\x00 c \x01\x02\x1b[0m \x7f end\x00")
valid("long_space_run", "start" + " " * 20000 + "end")
valid("long_newline_run", "start" + "\n" * 10000 + "end")
valid("long_letter_run", "a" * 5000 + " " + "ab" * 2000)
valid("long_symbol_run", "!" * 3000 + " " + "=-" * 1500)
line = book.replace("\n", " ")
valid("one_megabyte_line", line[: 1_000_000] if len(line.encode()) >= 1_000_000 else (line * 2)[: 1_000_000])
valid("specials", "<|endoftext|>Hello<|endoftext|>world <|endoftext|><|endoftext|> x<|endoftext|>\n"
      "<|endoftext| <|endoftext|>> <<|endoftext|>|endoftext|> endoftext <|end|> <|endoftext|>")

# Every code point of the planes in use, in a few contexts, and a sample of the rest.
cps = [c for c in range(1, 0x40000) if not 0xD800 <= c <= 0xDFFF] + list(range(0xE0000, 0xE1000))
cps += list(range(0x40000, 0x110000, 997))
valid("code_points", "".join(f"x{chr(c)}x {chr(c)}1{chr(c)}\n" for c in cps))

# Random text from pieces that stress the pattern.
alphabet = (list("abcXYZ019 '\t\n\r.,!?-_") + [" ", " ", "  ", "'s", "'ll", "\u00a0", "é", "ß", "日本", "😀", "👨‍👩‍👧",
            "\u0301", "\u3000", "٣", "Ⅻ", "\x00", "<|endoftext|>", "<|", "|>", "\u2028", "\x85"])
for i in range(20):
    n = rng.randrange(0, 4000)
    valid(f"random_{i:02d}", "".join(rng.choice(alphabet) for _ in range(n)))

# Invalid UTF-8.
invalid("truncated", b"abc \xe2\x82 def \xf0\x9f\x98 ghi \xc3")
invalid("lone_continuation", b"\x80\x81 x\xbf y \x80\x80\x80z")
invalid("overlong_and_surrogates", b"\xc0\xaf \xe0\x80\xaf \xed\xa0\x80 \xed\xbf\xbf \xf4\x90\x80\x80 \xf8\x88\x80\x80\x80")
invalid("bad_bytes_everywhere", b"\xff\xfe" + b" \xffabc\xfe's\xff 12\xff3 \xff\xff  \xff\n\xff\t!\xff")
invalid("latin1_text", "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00a3100 \u00bd\n".encode("latin-1") * 20)
for i in range(20):
    n = rng.randrange(1, 3000)
    if i % 2:
        blob = bytes(rng.randrange(256) for _ in range(n))
    else:
        # Mostly text with invalid bytes sprinkled in.
        parts = []
        for _ in range(n // 4):
            r = rng.random()
            parts.append(bytes([rng.randrange(0x80, 0x100)]) if r < 0.1 else
                         rng.choice(["a", "b ", " the", "'s", "\n", "  ", "é", "😀", "日", "1", "!"]).encode())
        blob = b"".join(parts)
    invalid(f"random_{i:02d}", blob)
