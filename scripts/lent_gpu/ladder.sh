# How the published ladders were run: one call of a GPU machine lent for at most ~10 minutes a call, which receives
# only the checkout plus carried ignored folders (.whl: optuna's wheels; .data/wikipedia: the corpus's xz files;
# .cache_ladder/tokenizers: the study's BPE; .data/gpt2: the GPT-2 BPE, xz) and returns what is written to $OUT.
# The limit (64 MiB) counts disk usage (du), not bytes: the checkout (~7.7 MB), the 4 shards (54.5 MB) and the wheels
# fit only with SQLAlchemy's pure-Python wheel (2.1 MB; the compiled one is 4.7 MB), so .whl is made with
#   pip download -d .whl --no-deps --only-binary=:all: --python-version 3.12 --platform any sqlalchemy==2.1.9 \
#       optuna==5.0.0 alembic==1.20.1 colorlog==6.12.0 mako==1.4.3
#   END=585 [RETIME=1 RETIME_ARGS="--compile --cells */2m"] [LADDER=scaling_ladder NAME=scaling_wiki] \
#       [FROM=...] bash scripts/lent_gpu/ladder.sh
# FROM: where NAME does not exist yet, it starts as a copy of docs/results/FROM (its runs and records, no weights): a
# ladder extended by new families grows in a folder of its own while the published one stays as it is (the 1 : 3
# mixes grew so, in NAME=scaling_wiki_next FROM=scaling_wiki, until that copy took the study's place).
# END: seconds from the start at which everything must be done. The study's folder comes back as $OUT/NAME.tgz
# (weights and checkpoints stay on the machine): unpack it into docs/results/ before the next call (a call whose
# checkout holds fewer trials than the last call returned stops at once: stale.sh), and chain calls within the
# machine's idle release so that a paused run's checkpoint is still there (--fill). A machine taken back during a call
# returns nothing: the next call goes on from the last unpacked study, and a paused run starts again from its first
# step (its checkpoint stayed on that machine; seen 2026-12-06, attn_la3/20m at 0.008).
start=$(date +%s)
source scripts/lent_gpu/env.sh
LADDER=${LADDER:-scaling_ladder}; END=${END:-590}
NAME=${NAME:-scaling_wiki}
D=docs/results/$NAME
if [ -n "${FROM:-}" ] && [ ! -d "$D" ]; then  # a misspelt FROM must not start the whole ladder afresh
    [ -f "docs/results/$FROM/ladder.db" ] || { echo "ladder.sh: FROM=$FROM: no docs/results/$FROM/ladder.db"; exit 2; }
    cp -r "docs/results/$FROM" "$D" && rm -rf "$D/weights" "$D/checkpoints" "$D/recheck" || exit 2
    echo "$D: a copy of docs/results/$FROM"
fi
source scripts/lent_gpu/stale.sh; refuse_stale $D/ladder.db
left() { echo $(( END - ($(date +%s) - start) )); }
if [ -n "${RETIME:-}" ]; then  # 90 s kept for the tokens (made before its limit counts), the report and the tar
    M=$(python3 -c "print(round(($(left) - 90) / 60, 2))")
    set -f; python3 -m archsearch retime $D --data .data/wikipedia --timeout-minutes $M ${RETIME_ARGS:-} 2>&1 \
        | grep -v -E '^retime .* [0-9]+/[0-9]+ \(' | tee $OUT/retime.log; set +f
fi
L=$(left)
if [ "$L" -gt 180 ] && [ -z "${NO_LADDER:-}" ]; then  # 75 s after the limit: the pause, the scoring, the report
    M=$(python3 -c "print(round(($L - 75) / 60, 2))")
    echo "ladder with --timeout-minutes $M"
    python3 -m archsearch run search_spaces/$LADDER.yaml --data .data/wikipedia --out $D --timeout-minutes $M --fill \
        2>&1 | grep -v -E '^\s*$' | tee $OUT/ladder.log | tail -c 6000
fi
python3 -m archsearch report $D > /dev/null 2>&1
keep_last $D/ladder.db
tar czf $OUT/$NAME.tgz --exclude=weights --exclude=checkpoints -C docs/results $NAME
echo "elapsed $(( $(date +%s) - start )) s"
