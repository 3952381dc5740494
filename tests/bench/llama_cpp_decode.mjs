// Decode speed of llama.cpp on a GGUF file, for `kvscope bench`'s comparison (not a test; never
// run by CTest). llama.cpp comes prebuilt from the npm registry:
//   npm install --prefix /tmp/llamacpp node-llama-cpp@3.22.1   (pulls @node-llama-cpp/linux-x64)
//   NODE_PATH=/tmp/llamacpp/node_modules node tests/bench/llama_cpp_decode.mjs MODEL.gguf \
//       [--prompt-tokens 16] [--steps 32] [--threads N] [--runs 3]
// Prints one JSON line per run: the prompt's time and greedy decode tokens/s, measured the way
// kvscope bench measures its own (the same random prompt ids from a seeded generator, the time
// of each decode step, prefill excluded).
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
    const i = args.indexOf("--" + name);
    return i >= 0 ? Number(args[i + 1]) : dflt;
};
const modelPath = args[0];
if (!modelPath) {
    console.error("usage: node llama_cpp_decode.mjs MODEL.gguf [--prompt-tokens N] [--steps N] [--threads N] [--runs N]");
    process.exit(2);
}
const promptTokens = opt("prompt-tokens", 16), steps = opt("steps", 32);
const threads = opt("threads", os.cpus().length), runs = opt("runs", 3);

// node-llama-cpp is found through NODE_PATH (it is not a dependency of KVScope).
const require = createRequire(path.join(process.env.NODE_PATH ?? ".", "x.js"));
const { getLlama } = await import(require.resolve("node-llama-cpp"));
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath, gpuLayers: 0, useMmap: true });

// A seeded prompt of random ids below the vocabulary size (mulberry32).
let seed = 7;
const rand = () => {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const vocabSize = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
for (let r = 0; r < runs; ++r) {
    const context = await model.createContext({ contextSize: Math.max(256, promptTokens + steps + 8), threads, batchSize: 512 });
    const seq = context.getSequence();
    const prompt = Array.from({ length: promptTokens }, () => Math.floor(rand() * (vocabSize - 1)));
    let t0 = performance.now(), last = t0, first = -1;
    const stepMs = [];
    let n = 0;
    for await (const token of seq.evaluate(prompt, { temperature: 0 })) {
        const now = performance.now();
        if (first < 0) first = now - t0; else stepMs.push(now - last);
        last = now;
        if (++n > steps) break;
    }
    const total = stepMs.reduce((a, b) => a + b, 0);
    console.log(JSON.stringify({ run: r, threads, prompt_tokens: promptTokens, steps: stepMs.length,
        prefill_and_first_ms: first, tokens_per_s: stepMs.length * 1000 / total }));
    await context.dispose();
}
await model.dispose();
