// llama.cpp's answers for tests/llamacpp/tst_llama_cpp_parity.cpp: token ids of strings, and a
// greedy decode with the raw logits of every step. llama.cpp comes prebuilt from npm
// (node-llama-cpp 3.22.1 and its @node-llama-cpp/linux-x64 binaries), found through NODE_PATH:
//   NODE_PATH=build/llamacpp/node_modules node tests/llamacpp/llama_cpp_reference.mjs REQUEST.json
// (or the request on stdin). The request:
//   { "threads": 1,                          // llama.cpp's threads spin: keep this small
//     "jobs": [ { "model": "a.gguf",
//                 "tokenize": ["text", ...],  // optional
//                 "decode": { "prompt": [ids], "steps": 16, "top": 5, "logits": true } } ] }
// prints one JSON object on stdout:
//   { "nodeLlamaCpp": "3.22.1", "llamaCpp": "<release>",
//     "jobs": [ { "model": "a.gguf",
//                 "vocab": { "size", "bos", "eos", "addBos", "addEos", "type" },
//                 "tokenize": [ { "text", "plain": [ids], "special": [ids] } ],
//                 "decode": [ { "token": id, "top": [[id, p], ...], "gap": logit1 - logit2,
//                               "logits": [...] } ] } ] }
// or, when a job fails, { ..., "error": "message" } for that job (the others still run).
//
// What llama.cpp does here, read from node-llama-cpp's addon and llama.cpp's source:
// - tokenize: LlamaModel.tokenize(text, special) is common_tokenize(vocab, text,
//   add_special = false, parse_special = special) (llama/addon/AddonModel.cpp): no BOS, no EOS,
//   whatever tokenizer.ggml.add_bos_token says. "plain" parses special-token text as plain text,
//   "special" turns it into the special token. A JS string cannot hold invalid UTF-8 (the addon
//   reads it with Napi's Utf8Value, which writes a lone surrogate as U+FFFD), so invalid bytes are
//   left to KVScope's own tokenizer tests.
// - decode: LlamaContextSequence.controlledEvaluate with generateNext.logits = true hands back
//   llama_get_logits_ith for the token, untouched: the sampler chain it passes through holds only
//   llama.cpp's greedy sampler (temperature 0 and no repeatPenalty, dryRepeatPenalty, tokenBias or
//   grammar given: AddonSampler builds no penalty or bias samplers), which selects and changes no
//   logit. The probabilities below are the full softmax of those raw logits, computed here in
//   double precision; the chosen token is the argmax (the lowest id among equal logits, as
//   llama.cpp's greedy sampler and KVScope's sampler both pick), checked against llama.cpp's own
//   greedy choice.
// - the KV cache is float32 (llama.cpp's default is f16) and flash attention off, to match
//   KVScope's default float32 cache: the comparison then measures the model code, not the cache.
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const requestText = process.argv[2] ? fs.readFileSync(process.argv[2], "utf8") : fs.readFileSync(0, "utf8");
const request = JSON.parse(requestText);
const threads = request.threads ?? 1;

// (require.resolve searches NODE_PATH, a list like PATH; ESM's import alone would not.)
const require = createRequire(import.meta.url);
const modulePath = require.resolve("node-llama-cpp");
const { getLlama, LlamaLogLevel } = await import(modulePath);
// (package.json is not among node-llama-cpp's exports: read it beside dist/index.js)
const packageVersion = () => {
    try {
        return JSON.parse(fs.readFileSync(path.join(path.dirname(modulePath), "..", "package.json"), "utf8")).version;
    } catch {
        return null;
    }
};
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: threads });

const out = {
    nodeLlamaCpp: packageVersion(),
    llamaCpp: llama.llamaCppRelease?.release ?? null,
    jobs: [],
};

// The k largest entries of logits as [id, probability], from the full softmax (double precision).
function softmaxTop(logits, k) {
    let max = -Infinity;
    for (const x of logits) if (x > max) max = x;
    let sum = 0;
    for (const x of logits) sum += Math.exp(x - max);
    const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
    return order.slice(0, k).map((id) => [id, Math.exp(logits[id] - max) / sum]);
}

async function decode(model, job) {
    const d = job.decode;
    const steps = d.steps ?? 16, top = d.top ?? 5;
    const vocabSize = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
    const contextSize = Math.min(model.trainContextSize, d.prompt.length + steps + 1);
    const context = await model.createContext({
        contextSize,
        batchSize: Math.max(d.prompt.length, 1),
        threads,
        flashAttention: false,
        experimentalKvCacheKeyType: "F32",
        experimentalKvCacheValueType: "F32",
    });
    try {
        const sequence = context.getSequence();
        const next = { token: true, logits: true, options: { temperature: 0 } };
        let input = d.prompt.map((id, i) => (i + 1 < d.prompt.length ? id : [id, { generateNext: next }]));
        const result = [];
        for (let s = 0; s < steps; ++s) {
            const evaluated = await sequence.controlledEvaluate(input);
            const n = evaluated[evaluated.length - 1]?.next;
            if (!n?.logits) throw new Error(`step ${s}: llama.cpp returned no logits`);
            const logits = new Float64Array(vocabSize);
            for (const [id, value] of n.logits) logits[id] = value;
            const ranked = softmaxTop(logits, Math.max(top, 2));
            const token = ranked[0][0];
            if (n.token !== token)
                throw new Error(`step ${s}: llama.cpp's greedy sampler chose ${n.token}, the argmax of its logits is ${token}`);
            const entry = { token, top: ranked.slice(0, top), gap: logits[ranked[0][0]] - logits[ranked[1][0]] };
            if (d.logits) entry.logits = Array.from(logits);
            result.push(entry);
            input = [[token, { generateNext: next }]];
        }
        return result;
    } finally {
        await context.dispose();
    }
}

for (const job of request.jobs) {
    const entry = { model: job.model };
    let model = null;
    try {
        model = await llama.loadModel({ modelPath: job.model, gpuLayers: 0, useMmap: false });
        entry.vocab = {
            size: model.fileInfo.metadata.tokenizer.ggml.tokens.length,
            bos: model.tokens.bos ?? null,
            eos: model.tokens.eos ?? null,
            addBos: model.tokens.shouldPrependBosToken,
            addEos: model.tokens.shouldAppendEosToken,
            type: model.vocabularyType,
        };
        if (job.tokenize)
            entry.tokenize = job.tokenize.map((text) => ({
                text,
                plain: Array.from(model.tokenize(text, false)),
                special: Array.from(model.tokenize(text, true)),
            }));
        if (job.decode) entry.decode = await decode(model, job);
    } catch (e) {
        entry.error = String(e?.stack ?? e);
    } finally {
        if (model) await model.dispose();
    }
    out.jobs.push(entry);
}
process.stdout.write(JSON.stringify(out) + "\n");
await llama.dispose();
