# run 63: matmul_cm_h (f16 X and W, no decode in the k loop) against qmatmul_cm: correctness on the driver, then the bench
timeout 150 $B/test_qmatmul > $OUT/cmh_test.txt 2>&1; echo "test rc=$?" | tee -a $OUT/cmh_test.txt
grep -E "FAIL|^PASS|SKIP|worst" $OUT/cmh_test.txt | head -20
timeout 240 $B/test_qmatmul --bench 5 > $OUT/cmh_bench.txt 2>&1; echo "bench rc=$?" | tee -a $OUT/cmh_bench.txt
grep -E "cm_h|cm_bf16|cm_q4_k" $OUT/cmh_bench.txt | awk "{print \$2, \$3, \$4, \$8, \$10, \$11, \$12, \$13}" | sort -k2,2 -k4 -n -r | head -60
