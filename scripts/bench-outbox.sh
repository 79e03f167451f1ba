#!/usr/bin/env bash
# What the outbox costs: the flash sale (64 buyers, combined, durable commits) and an
# import of ROWS events, on SQLite and PostgreSQL, by two builds in turns in one run:
# OLD (a build before the outbox) and NEW (this checkout's release build). ROUNDS
# rounds interleave them, so a noisy neighbour hits both alike. Prints CSV.
#
#   scripts/bench-outbox.sh OLD_BINARY [ROUNDS] [ROWS]     (defaults 3, 100000)
#
# OLD_BINARY: e.g. git worktree add /tmp/old <commit> && (cd /tmp/old &&
# CARGO_TARGET_DIR=/tmp/old-target cargo build --release -p goticket-cli).
set -euo pipefail
export PGOPTIONS="--client-min-messages=warning"
cd "$(dirname "$0")/.."
old="$1"
rounds="${2:-3}"
rows="${3:-100000}"
cargo build --release -q -p goticket-cli
new="$PWD/target/release/goticket"
pg="${GOTICKET_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/goticket_bench}"
psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'goticket_bench'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE goticket_bench"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 - "$rows" "$dir/events.csv" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("external_id,name,starts_at,ends_at,capacity,price,slug\n")
    for i in range(n):
        day = 1 + i % 28
        f.write(f"imp-{i},Imported event {i},2030-02-{day:02d}T19:00:00Z,2030-02-{day:02d}T22:00:00Z,{100 + i % 900},{10 + i % 90}.50 EUR,imp-{i}\n")
PY
fresh() {
    case "$1" in
        sqlite) echo "sqlite:$(mktemp -u -p "$dir" bench-XXXXXX.db)" ;;
        postgres)
            psql -h 127.0.0.1 -U postgres -d goticket_bench -qc "DROP SCHEMA IF EXISTS bench_outbox CASCADE; CREATE SCHEMA bench_outbox" >/dev/null
            echo "$pg?options=-c%20search_path%3Dbench_outbox" ;;
    esac
}
now() { date +%s.%N; }
echo "round,store,build,bench,per_second"
for round in $(seq 1 "$rounds"); do
    for store in sqlite postgres; do
        for build in old new; do
            bin="$old"; [ "$build" = new ] && bin="$new"
            db=$(fresh "$store")
            rate=$("$bin" --db "$db" --format json bench flash-sale --capacity 20000 --buyers 20000 --concurrency 64 \
                | python3 -c "import json,sys; print(round(json.load(sys.stdin)['bookings_per_sec']))")
            echo "$round,$store,$build,flash-sale,$rate"
            db=$(fresh "$store")
            "$bin" --db "$db" migrate >/dev/null
            t0=$(now); "$bin" --db "$db" --format json import events "$dir/events.csv" >/dev/null; t1=$(now)
            echo "$round,$store,$build,import,$(python3 -c "print(round($rows / ($t1 - $t0)))")"
        done
    done
done
