# .dev/device/emb49.sh — lead (run 49): the embedding table in its GGUF blocks (embed.comp's block variants) on top
# of run 48's sub-only fusions: dense VRAM, decode, prefill, test_embed on the driver. ~150 s.
e_t0=$(date +%s)
{
echo "#### emb49: test_embed on the NVIDIA driver"
timeout 60 $B/test_embed > /tmp/e_k.txt 2>&1; echo "rc=$?"; grep -cE "^ok" /tmp/e_k.txt; grep -vE "^ok" /tmp/e_k.txt | tail -3
echo "#### emb49: bench --prompt 16 --decode 128 --reps 2 (x2)"
for r in 1 2; do
  timeout 60 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 2 > /tmp/e_b$r.txt 2>&1
  echo "rc=$? $(grep -E '^model' /tmp/e_b$r.txt | grep -oE '[0-9.]+ GiB dense[^;]*')"; grep -E "^best" /tmp/e_b$r.txt
done
echo "#### emb49: prefill-ab 2,16,512,1024,4096"
timeout 150 $B/qnext prefill-ab -m $M --prompts 2,16,512,1024,4096 --reps 2 --variant - --variant - > /tmp/e_ab.txt 2>&1
echo "rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/e_ab.txt
echo "#### emb49: generate (greedy ids) equal across runs"
timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5 -n 8 --greedy --ids 2>/dev/null | tail -1
echo "== emb49: $(( $(date +%s) - e_t0 )) s"
} 2>&1 | tee -a $OUT/emb49.txt
cp /tmp/e_*.txt $OUT/ 2>/dev/null
