#!/usr/bin/env node
// Times OpenAI's tiktoken ("gpt2") on one file for bench/bench_tokenizer.c:
// npm `tiktoken` (the Rust core as WASM) and npm `js-tiktoken` (pure JS), each
// the median of REPEAT single-threaded encodes after one warm-up. Prints one
// JSON line: {"bytes":…, "tokens":…, "tiktoken_mbps":…, "js_tiktoken_mbps":…}.
'use strict';
const fs = require('fs');
const [file, repeatArg] = process.argv.slice(2);
const repeat = Math.max(1, parseInt(repeatArg || '5', 10));
const bytes = fs.readFileSync(file);
const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);

function medianMBps(encode) {
  encode();
  const times = [];
  let tokens = 0;
  for (let r = 0; r < repeat; r++) {
    const t0 = process.hrtime.bigint();
    tokens = encode().length;
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  times.sort((a, b) => a - b);
  return { mbps: bytes.length / 1e6 / times[Math.floor(times.length / 2)], tokens };
}

const { get_encoding } = require('tiktoken');
const enc = get_encoding('gpt2');
const wasm = medianMBps(() => enc.encode_ordinary(text));
enc.free();
const js = require('js-tiktoken').getEncoding('gpt2');
const pure = medianMBps(() => js.encode(text, [], []));
process.stdout.write(JSON.stringify({ bytes: bytes.length, tokens: wasm.tokens, tiktoken_mbps: wasm.mbps,
  js_tiktoken_mbps: pure.mbps }) + '\n');
