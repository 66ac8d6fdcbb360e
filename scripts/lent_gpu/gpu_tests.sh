# GPU tests for a machine lent in calls of at most ~10 minutes (tests/test_gpu.py needs more than one call's share
# beside other work): PART=i OF=n runs the i-th of n equal slices of the selected tests, in collection order, and
# writes the log to $OUT/gpu_tests_i.log. FILES (default tests/test_gpu.py) and K (a pytest -k expression) select;
# LIMIT (s) stops the run, keeping what it logged. ISOLATE=1 runs each test in a process of its own (~10 s each), so
# one that leaves the CUDA context broken (an illegal address) fails alone, not every test after it.
#   PART=1 OF=2 bash scripts/lent_gpu/gpu_tests.sh
#   FILES="tests/test_kernel_twins.py tests/test_gpu.py" K="head_step or decode" LIMIT=120 bash scripts/lent_gpu/gpu_tests.sh
source scripts/lent_gpu/env.sh
PART=${PART:-1}; OF=${OF:-1}
read -ra files <<< "${FILES:-tests/test_gpu.py}"
mapfile -t ids < <(python3 -m pytest -q -p no:cacheprovider --collect-only "${files[@]}" ${K:+-k "$K"} 2>/dev/null \
    | grep '::')
n=${#ids[@]}; from=$(( (PART - 1) * n / OF )); to=$(( PART * n / OF ))
echo "${files[*]}${K:+ -k \"$K\"}: tests $((from + 1))–$to of $n"
if [ -z "$ISOLATE" ]; then
    timeout -k 5 "${LIMIT:-100000}" python3 -m pytest -q -p no:cacheprovider "${ids[@]:from:to - from}" 2>&1 \
        | tee $OUT/gpu_tests_$PART.log | tail -15
    exit
fi
start=$(date +%s)
for id in "${ids[@]:from:to - from}"; do
    left=$(( ${LIMIT:-100000} - ($(date +%s) - start) ))
    [ "$left" -gt 5 ] || { echo "$id: not run, out of time"; continue; }
    echo "=== $id" >> $OUT/gpu_tests_$PART.log
    timeout -k 5 "$left" python3 -m pytest -q -p no:cacheprovider "$id" >> $OUT/gpu_tests_$PART.log 2>&1
    echo "$id: $(tail -1 $OUT/gpu_tests_$PART.log)"
done
