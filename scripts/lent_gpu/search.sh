# A search (archsearch run SPACE --budget B) on a GPU machine lent in calls of at most ~10 minutes, as ladder.sh runs a
# ladder: carry .whl, .data/wikipedia and .cache_ladder/tokenizers (the same BPE as the ladder's: same corpus and
# vocabulary). Each call starts no trial after its limit (END less 120 s) and no re-training run it does not expect to
# finish within it, and the next call resumes the study, which comes back as $OUT/NAME.tgz (weights stay on the machine;
# the report's check of the saved weights is kept in the study, so a later call adds the trials it finds weights for).
# Unpack it into docs/results/ before the next call (stale.sh stops a call whose checkout holds fewer trials).
#   END=585 [SPACE=pam_hybrids BUDGET=wiki NAME=pam_hybrids_wiki DATA=.data/wikipedia RECHECK=1] bash scripts/lent_gpu/search.sh
# RECHECK=1: then `archsearch report --recheck` in a fresh process (the weights stay on the machine: check them there).
start=$(date +%s)
source scripts/lent_gpu/env.sh
SPACE=${SPACE:-pam_hybrids}; BUDGET=${BUDGET:-wiki}; NAME=${NAME:-pam_hybrids_wiki}; END=${END:-590}
DATA=${DATA:-.data/wikipedia}
D=docs/results/$NAME
source scripts/lent_gpu/stale.sh; refuse_stale $D/study.db
L=$(( END - ($(date +%s) - start) ))
if [ "$L" -gt 200 ]; then  # 120 s kept after the limit: a trial started just before it (the limit stops new ones),
    M=$(python3 -c "print(round(($L - 120) / 60, 2))")  # the report and its check of new weights, the tar
    echo "search with --timeout-minutes $M"
    python3 -m archsearch run search_spaces/$SPACE.yaml --budget $BUDGET --data $DATA --out $D \
        --timeout-minutes $M 2>&1 | grep -v -E '^\s*$' | tee $OUT/search.log | tail -c 6000
fi
if [ -n "$RECHECK" ]; then  # every saved weights file here scored again, in a fresh process (before publishing)
    python3 -m archsearch report $D --recheck 2>&1 | tee $OUT/recheck.log | tail -3
fi
keep_last $D/study.db
tar czf $OUT/$NAME.tgz --exclude=weights --exclude=checkpoints -C docs/results $NAME
echo "elapsed $(( $(date +%s) - start )) s"
