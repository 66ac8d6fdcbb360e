# tests/test_gpu.py in parts, for a GPU machine lent in calls of at most ~10 minutes (the whole file needs more than one
# call's share beside other work): PART=i OF=n runs the i-th of n equal slices of its tests, in collection order, and
# writes the log to $OUT/gpu_tests_i.log.
#   PART=1 OF=2 bash scripts/lent_gpu/gpu_tests.sh
source scripts/lent_gpu/env.sh
PART=${PART:-1}; OF=${OF:-1}
mapfile -t ids < <(python3 -m pytest -q -p no:cacheprovider --collect-only tests/test_gpu.py 2>/dev/null | grep '::')
n=${#ids[@]}; from=$(( (PART - 1) * n / OF )); to=$(( PART * n / OF ))
echo "tests/test_gpu.py: tests $((from + 1))–$to of $n"
python3 -m pytest -q -p no:cacheprovider "${ids[@]:from:to - from}" 2>&1 | tee $OUT/gpu_tests_$PART.log | tail -15
