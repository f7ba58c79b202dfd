#!/usr/bin/env node
// Reference token ids for the tokenizer tests, from implementations that share
// no code with onebit. Prints one line of space-separated ids per input file.
//
//   node tokenize_ref.cjs tiktoken [--allow-special] FILE...
//       OpenAI's tiktoken (npm `tiktoken`: its Rust core compiled to WASM),
//       encoding "gpt2". Files must be valid UTF-8.
//   node tokenize_ref.cjs tiktoken-bytes FILE...
//       Any bytes. tiktoken takes only Unicode text; bytes that are not UTF-8
//       are split as the U+FFFD that replaces them would be, keeping the bytes:
//       the GPT-2 pattern runs on the replaced text, valid pieces go through
//       tiktoken, pieces holding invalid bytes through tiktoken's merge rule
//       (lowest-rank pair first) with ranks read from tiktoken one token at a time.
//   node tokenize_ref.cjs hf TOKENIZER_JSON FILE...
//       Hugging Face tokenizers (Rust, npm `@anush008/tokenizers`).
//   node tokenize_ref.cjs hf-js TOKENIZER_JSON FILE...
//       Hugging Face Tokenizers.js (npm `@huggingface/tokenizers`, pure JavaScript).
'use strict';
const fs = require('fs');

function utf8(path) {
  const bytes = fs.readFileSync(path);
  const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  return text;
}

function tiktokenMode(args) {
  const { get_encoding } = require('tiktoken');
  const enc = get_encoding('gpt2');
  let allow = false;
  if (args[0] === '--allow-special') { allow = true; args = args.slice(1); }
  for (const f of args) {
    const text = utf8(f);
    const ids = allow ? enc.encode(text, 'all') : enc.encode_ordinary(text);
    process.stdout.write(Array.from(ids).join(' ') + '\n');
  }
  enc.free();
}

// Decodes bytes as UTF-8, one U+FFFD per invalid byte, remembering the byte
// offset of every UTF-16 unit.
function lossy(bytes) {
  let s = '';
  const at = [];
  let i = 0;
  while (i < bytes.length) {
    const c = bytes[i];
    let len = 0, cp = 0;
    if (c < 0x80) { len = 1; cp = c; }
    else if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    let ok = len > 0 && i + len <= bytes.length;
    for (let k = 1; ok && k < len; k++) {
      if ((bytes[i + k] & 0xC0) !== 0x80) ok = false; else cp = (cp << 6) | (bytes[i + k] & 0x3F);
    }
    if (ok && ((len === 3 && cp < 0x800) || (len === 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
               (cp >= 0xD800 && cp <= 0xDFFF))) ok = false;
    if (!ok) { len = 1; cp = 0xFFFD; }
    const ch = String.fromCodePoint(cp);
    for (let k = 0; k < ch.length; k++) at.push(i);
    s += ch;
    i += len;
  }
  at.push(bytes.length);
  return { s, at };
}

function tiktokenBytesMode(args) {
  const { get_encoding } = require('tiktoken');
  const enc = get_encoding('gpt2');
  // Rank of every mergeable token, keyed by its bytes (as a latin1 string).
  const ranks = new Map();
  const count = enc.token_byte_values().length;
  for (let r = 0; r < count; r++) ranks.set(Buffer.from(enc.decode_single_token_bytes(r)).toString('latin1'), r);
  const rank = (bytes) => {
    const r = ranks.get(Buffer.from(bytes).toString('latin1'));
    return r === undefined ? Infinity : r;
  };
  const bpe = (bytes) => {
    let parts = Array.from(bytes, (b) => [b]);
    for (;;) {
      let best = -1, bestRank = Infinity;
      for (let i = 0; i + 1 < parts.length; i++) {
        const r = rank(parts[i].concat(parts[i + 1]));
        if (r < bestRank) { bestRank = r; best = i; }
      }
      if (best < 0) break;
      parts.splice(best, 2, parts[best].concat(parts[best + 1]));
    }
    return parts.map(rank);
  };
  const pattern = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
  for (const f of args) {
    const bytes = fs.readFileSync(f);
    const { s, at } = lossy(bytes);
    const ids = [];
    for (const m of s.matchAll(pattern)) {
      const piece = bytes.subarray(at[m.index], at[m.index + m[0].length]);
      let valid = true;
      try { new TextDecoder('utf-8', { fatal: true }).decode(piece); } catch (e) { valid = false; }
      if (valid) ids.push(...enc.encode_ordinary(piece.toString('utf8')));
      else ids.push(...bpe(piece));
    }
    process.stdout.write(ids.join(' ') + '\n');
  }
  enc.free();
}

async function hfMode(args) {
  const { Tokenizer } = require('@anush008/tokenizers');
  const tok = Tokenizer.fromFile(args[0]);
  for (const f of args.slice(1)) {
    const enc = await tok.encode(utf8(f), null, { addSpecialTokens: false });
    process.stdout.write(Array.from(enc.getIds()).join(' ') + '\n');
  }
}

function hfJsMode(args) {
  const { Tokenizer } = require('@huggingface/tokenizers');
  const json = JSON.parse(fs.readFileSync(args[0], 'utf8'));
  const tok = new Tokenizer(json, {});
  for (const f of args.slice(1)) {
    const enc = tok.encode(utf8(f), { add_special_tokens: false });
    process.stdout.write(Array.from(enc.ids).join(' ') + '\n');
  }
}

const [mode, ...rest] = process.argv.slice(2);
const modes = { tiktoken: tiktokenMode, 'tiktoken-bytes': tiktokenBytesMode, hf: hfMode, 'hf-js': hfJsMode };
if (!modes[mode]) {
  process.stderr.write('usage: tokenize_ref.cjs tiktoken|tiktoken-bytes|hf|hf-js [args] FILE...\n');
  process.exit(2);
}
Promise.resolve(modes[mode](rest)).catch((e) => { process.stderr.write(String(e.stack || e) + '\n'); process.exit(1); });
