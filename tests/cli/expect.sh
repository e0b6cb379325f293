# Sourced by the shell tests: run a command and judge its exit code and
# output. The caller sets $tmp (a private folder) and fails=0 first.
#   expect CODE WHAT -- COMMAND...   the exit code must be CODE (output in $tmp/out)
#   has REGEX WHAT                   the last output must match REGEX (grep -E)
#   has_text TEXT WHAT               the last output must contain TEXT as it is
expect() {
    code=$1 what=$2
    shift 3
    t0=$(date +%s)
    "$@" >"$tmp/out" 2>&1
    rc=$?
    if [ $rc -ne "$code" ]; then
        echo "NOT OK: $what: exit $rc, wanted $code"; sed 's/^/    /' "$tmp/out"; fails=$((fails + 1))
    else
        echo "ok: $what (exit $rc, $(($(date +%s) - t0)) s)"
    fi
}
has() {
    if grep -qE -- "$1" "$tmp/out"; then echo "ok:   $2"; else
        echo "NOT OK: $2: no /$1/ in:"; sed 's/^/    /' "$tmp/out"; fails=$((fails + 1)); fi
}
has_text() {
    if grep -qF -- "$1" "$tmp/out"; then echo "ok:   output has '$1'"; else
        echo "NOT OK: $2: output lacks '$1'"; sed 's/^/    /' "$tmp/out"; fails=$((fails + 1)); fi
}
