#!/usr/bin/env bash
# Known vulnerabilities (RustSec) in the dependency graph, checked by cargo-deny
# with deny.toml's [advisories] policy. Called by .ci/run; runs on its own too.
#
# * The online RustSec database when it can be fetched.
# * Otherwise the offline snapshot in $ADVISORY_SNAPSHOT (default: the
#   rustsec-advisory-db folder in the `shared` directory beside the clone),
#   never a skip. The snapshot is a plain copy without git history
#   (SNAPSHOT.md names its commit and date); cargo-deny wants a git checkout, so
#   it gets a throw-away repository with one commit dated as the snapshot, and
#   its age is judged by that date, not by when it was copied: at most
#   $ADVISORY_SNAPSHOT_MAX_AGE_DAYS days (default 365; cargo-deny's own default
#   of 90 days is shorter than the snapshot's refresh cycle). An older snapshot
#   fails, so a stale database is never mistaken for a clean result.
#
# An advisory that applies fails (exit code != 0), unless deny.toml ignores it
# with a written reason. ADVISORY_OFFLINE=1 skips the online attempt.
set -euo pipefail
cd "$(dirname "$0")/.."

snapshot="${ADVISORY_SNAPSHOT:-../shared/rustsec-advisory-db}"
max_age_days="${ADVISORY_SNAPSHOT_MAX_AGE_DAYS:-365}"

if [ "${ADVISORY_OFFLINE:-0}" != 1 ] && timeout 60 cargo deny fetch db >/dev/null 2>&1; then
    echo "cargo deny advisories: the online RustSec advisory database"
    exec cargo deny check advisories
fi

if [ ! -f "$snapshot/SNAPSHOT.md" ] || [ ! -d "$snapshot/crates" ]; then
    echo "cargo deny advisories: FAILED: the online database is unreachable and there is no snapshot at $snapshot" >&2
    exit 1
fi
# "commit <40 hex> of <YYYY-MM-DD>" in SNAPSHOT.md (it may wrap between the two).
meta=$(tr '\n' ' ' <"$snapshot/SNAPSHOT.md")
commit=$(grep -oE 'commit [0-9a-f]{40}' <<<"$meta" | head -n1 | cut -d' ' -f2 || true)
date=$(grep -oE 'commit [0-9a-f]{40} of [0-9]{4}-[0-9]{2}-[0-9]{2}' <<<"$meta" | head -n1 | awk '{print $4}' || true)
if [ -z "$commit" ] || [ -z "$date" ]; then
    echo "cargo deny advisories: FAILED: $snapshot/SNAPSHOT.md names no 'commit <sha> of <date>'" >&2
    exit 1
fi
age_days=$(( ( $(date -u +%s) - $(date -u -d "$date" +%s) ) / 86400 ))
if [ "${ADVISORY_OFFLINE:-0}" = 1 ]; then
    echo "cargo deny advisories: ADVISORY_OFFLINE=1; using the offline snapshot"
else
    echo "cargo deny advisories: the online database is unreachable; using the offline snapshot"
fi
echo "  rustsec/advisory-db commit $commit of $date ($age_days days old; policy: at most $max_age_days days)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The snapshot as a git repository with one commit dated as the snapshot.
mkdir "$work/source"
cp -R "$snapshot/." "$work/source/advisory-db"
(
    cd "$work/source/advisory-db"
    git init -q -b main
    git add -A
    GIT_AUTHOR_DATE="${date}T00:00:00Z" GIT_COMMITTER_DATE="${date}T00:00:00Z" \
        git -c user.name=ci -c user.email=ci@example.invalid -c commit.gpgsign=false \
        commit -q -m "RustSec advisory-db snapshot $commit"
)
# deny.toml with the [advisories] database pointed at that repository and the
# staleness policy for the snapshot.
# cargo-deny insists on a URL with a host; git maps that name to the local
# repository (`insteadOf`), and the `.invalid` name could never resolve anyway.
db_url="https://advisory-db.invalid/rustsec/advisory-db"
awk -v path="$work/dbs" -v url="$db_url" -v days="$max_age_days" '
    { print }
    /^\[advisories\]/ {
        print "db-path = \"" path "\""
        print "db-urls = [\"" url "\"]"
        print "maximum-db-staleness = \"P" days "D\""
    }' deny.toml >"$work/deny.toml"
# "Fetch" = a local clone; then date the checkout as the snapshot, because
# cargo-deny judges staleness by the checkout's HEAD time.
GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0="url.file://$work/source/advisory-db.insteadOf" \
    GIT_CONFIG_VALUE_0="$db_url" cargo deny --config "$work/deny.toml" fetch db >/dev/null
for head in "$work"/dbs/*/.git/HEAD; do
    rm -f "$(dirname "$head")/FETCH_HEAD"
    touch -d "${date}T00:00:00Z" "$head"
done
cargo deny --offline --config "$work/deny.toml" check advisories
echo "cargo deny advisories: ok against the snapshot of $date (commit $commit)"
