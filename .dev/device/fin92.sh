# .dev/device/fin92.sh — lead (run 92): the three-way matmul_cm_h choice against 67dbc1a's binary (the new MoE layout,
# the old projection tiles), prefill alternated at 512-4096. ~200 s.
h_t0=$(date +%s)
{
xz -dc .dev/qnext_old.xz > $B/qnext_old && chmod +x $B/qnext_old
for bin in qnext qnext_old qnext qnext_old; do
  timeout 100 $B/$bin prefill-ab -m $M --prompts 512,1024,2048,4096 --reps 2 --variant - > /tmp/h_ab_$bin.txt 2>&1
  echo "prefill-ab $bin rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_ab_$bin.txt | sed -n 3p
done
echo "== fin92: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/fin92.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
