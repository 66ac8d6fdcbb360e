# The benchmarks of issue 27 on a GPU machine lent in calls of at most ~10 minutes: runs the named ones in order,
# each with what is left of the call (END s from its start, 20 s kept for the copy back), and stops before one it
# cannot start with at least MIN s. Each writes its output to $OUT/NAME.log and its compiler logs to $OUT/NAME.err
# (and NAME.parent.err).
# A warm machine keeps inductor's and Triton's caches (/tmp), so a later call compiles less.
#   RUN="e2e decode64" END=585 bash scripts/lent_gpu/benchmarks.sh
start=$(date +%s)
source scripts/lent_gpu/env.sh
END=${END:-585}; MIN=${MIN:-60}
declare -A CMD=(
    [e2e]="benchmarks/e2e.py --compile --cuda-graph --only compile+graph"
    # each finished length saved to $OUT/e2e_sweep.json; SWEEP_FROM=an earlier call's copy of it (carried) resumes
    [sweep]="benchmarks/e2e.py --compile --cuda-graph --only compile+graph --sweep 1024 2048 4096 8192 16384 --processes 1 --plot $OUT/e2e_sweep.png --save $OUT/e2e_sweep.json"
    # the sweep at 2k, 4k and 8k over 3 fresh processes (~3 x 3 minutes on a warm machine; too long for a 10-minute
    # call cold)
    [sweep3]="benchmarks/e2e.py --compile --cuda-graph --only compile+graph --sweep 2048 4096 8192 --plot $OUT/e2e_sweep3.png"
    # the two lengths around the crossover over 3 fresh processes (~6 minutes cold)
    [cross3]="benchmarks/e2e.py --compile --cuda-graph --only compile+graph --sweep 4096 8192 --plot $OUT/e2e_cross3.png"
    # the sweep's two ends over 3 fresh processes (154 + 33 + 34 s on an H100), so every length of the sweep has 3
    [ends3]="benchmarks/e2e.py --compile --cuda-graph --only compile+graph --sweep 1024 16384 --plot $OUT/e2e_ends3.png"
    [decode]="benchmarks/decode.py --weights bf16"
    [decode64]="benchmarks/decode.py --weights bf16 --batch 64 --contexts 8192"  # 32k: GPT-2's KV cache alone is ~77 GB
    # where the fused decode step stops paying: quicker at batch 1, 4x slower at 64 (decode.FUSED_MAX_BATCH)
    [decode4]="benchmarks/decode.py --weights bf16 --batch 4 --contexts 8192 --no-compile gpt2_100m"
    [decode16]="benchmarks/decode.py --weights bf16 --batch 16 --contexts 8192 --no-compile gpt2_100m"
    [rungs]="benchmarks/rungs.py --rungs 2m 6m"
    [loop]="benchmarks/train_loop.py --rungs 2m 20m --families transformer pam_real gla --processes 1"
    [loop3]="benchmarks/train_loop.py --rungs 20m --families transformer pam_real gla"  # 3 processes, ~5 minutes
    [loop3_2m]="benchmarks/train_loop.py --rungs 2m --families transformer pam_real gla"  # 3 processes, ~95 s
    [mixers]="benchmarks/mixers.py --sweep 2048 32768 --kernels"
    # the PAM kernels' tiles tuned for B 4, T 2048 beside the defaults (one process: it asks which tiles, minutes; a
    # bare --sweep: no T sweep)
    [mixers_tuned]="benchmarks/mixers.py --tuned --kernels --sweep --processes 1"
    # where the 100M training steps go, compiled (the trace stays on the machine: only the op tables come back)
    [profile_pam]="-m archsearch profile examples/paper_pam_100m.yaml --compile --batch 8 --seq-len 2048 --steps 3 --vocab 50257 --ops 40 --logdir /tmp/prof_pam"
    [profile_gpt2]="-m archsearch profile examples/gpt2_100m.yaml --compile --batch 8 --seq-len 2048 --steps 3 --vocab 50257 --ops 40 --logdir /tmp/prof_gpt2"
)
[ -n "$SWEEP_FROM" ] && cp "$SWEEP_FROM" $OUT/e2e_sweep.json
for name in ${RUN:-e2e decode64 rungs loop mixers sweep}; do
    [ -n "${CMD[$name]}" ] || { echo "benchmarks.sh: no benchmark named $name (${!CMD[*]})"; exit 2; }
    left=$(( END - 20 - ($(date +%s) - start) ))
    if [ "$left" -lt "$MIN" ]; then echo "$name: not started, ${left} s left"; break; fi
    echo "=== $name (${left} s left): python3 ${CMD[$name]}"
    # a benchmark's --log (fresh.py) keeps its child processes' compiler logs; every command's own stderr goes beside
    log=""; [[ ${CMD[$name]} == benchmarks/* ]] && log="--log $OUT/$name.err"
    timeout -k 10 "$left" python3 ${CMD[$name]} $log 2>>$OUT/$name.parent.err | tee $OUT/$name.log
    echo "=== $name: exit ${PIPESTATUS[0]} after $(( $(date +%s) - start )) s"
done
