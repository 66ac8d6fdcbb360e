# Sourced by ladder.sh and search.sh. Each call's checkout replaces the machine's copy of the study, so a chained call
# whose checkout lacks the last call's study (its NAME.tgz not unpacked into docs/results/) would train finished runs
# again. The last call's database stays in /tmp, which a warm machine keeps; a call whose checkout holds fewer trials
# than that stops before training anything (FORCE=1 goes on regardless).
last_of() {  # where this machine keeps the last call's copy of the study database $1
    echo "/tmp/last_$(basename "$(dirname "$1")").db"
}
trials_in() {  # the number of trials a study database records, finished or not (0 where there is none)
    python3 -c "
import sqlite3, sys
try:
    print(sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True).execute('select count(*) from trials').fetchone()[0])
except sqlite3.Error:
    print(0)" "$1"
}
refuse_stale() {  # $1: the study's database in the checkout
    local last
    last=$(last_of "$1")
    [ -f "$last" ] && [ -z "${FORCE:-}" ] || return 0
    local here there
    here=$(trials_in "$1"); there=$(trials_in "$last")
    if [ "$here" -lt "$there" ]; then
        echo "stale study: $1 records $here trials, the last call on this machine returned $there; unpack that" \
             "call's tgz into docs/results/ before the next (or FORCE=1)"
        exit 1
    fi
}
keep_last() {  # $1: the study's database, kept for the next call's refuse_stale
    [ -f "$1" ] && cp "$1" "$(last_of "$1")"
}
