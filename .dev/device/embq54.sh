# .dev/device/embq54.sh — lead (run 54): test_embed and a short bench after embed.comp's switch to quant.glsl's helpers.
{
timeout 60 $B/test_embed > /tmp/q_k.txt 2>&1; echo "test_embed rc=$?"; tail -1 /tmp/q_k.txt
timeout 60 $B/qnext bench -m $M --prompt 16 --decode 64 --reps 2 > /tmp/q_b.txt 2>&1; echo "bench rc=$?"; grep -E "^best|^device memory" /tmp/q_b.txt
} 2>&1 | tee -a $OUT/embq54.txt
