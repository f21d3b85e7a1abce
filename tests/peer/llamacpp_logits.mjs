// llamacpp_logits.mjs — cross-check of qnext's GGUF files against the real llama.cpp (not run by CI: it needs
// `npm install node-llama-cpp@3.22.1` (prebuilt CPU binaries of llama.cpp release v0.5.0) in the folder it runs from).
//   node llamacpp_logits.mjs MODEL.gguf greedy N IDS   -> N greedy token ids after the prompt IDS (comma-separated)
//   node llamacpp_logits.mjs MODEL.gguf logits IDS     -> JSON [T][vocab]: llama.cpp's logits after every prompt token
// Files come from tests/unit/test_gguf_qwen3next (--write-gguf, --synth-hf, --gguf-to-hf); the procedure and
// results are in docs/gguf-qwen3next.md §5.
import {getLlama} from "node-llama-cpp";

const [, , modelPath, mode, a, b] = process.argv;
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath});
const ctx = await model.createContext({contextSize: 512, sequences: 1, threads: 2});
const seq = ctx.getSequence();
if (mode === "greedy") {
    const out = [];
    for await (const t of seq.evaluate(b.split(",").map(Number), {temperature: 0})) {
        out.push(t);
        if (out.length >= Number(a)) break;
    }
    console.log(out.join(" "));
} else {
    const ids = a.split(",").map(Number);
    const res = await seq.controlledEvaluate(ids.map(t => [t, {generateNext: {logits: true}}]));
    const n = model.tokens.count ?? 0;
    console.log(JSON.stringify(res.map(r => {
        const row = new Array(Math.max(n, ...r.next.logits.keys()) + 1).fill(0);
        for (const [t, v] of r.next.logits) row[t] = v;
        return row;
    })));
}
await ctx.dispose();
await model.dispose();
