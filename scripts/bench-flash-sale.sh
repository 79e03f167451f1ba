#!/usr/bin/env bash
# The flash-sale benchmark behind BENCHMARKS.md: on SQLite and PostgreSQL, a hot
# event with 64 concurrent buyers, combined and --no-combine, plus the batched floor
# (100 bookings per transaction from one thread), all in one run, ROUNDS times
# interleaved so a noisy neighbour hits every configuration alike. Prints CSV.
#
#   scripts/bench-flash-sale.sh [ROUNDS]      (default 3)
#
# PostgreSQL: GOTICKET_BENCH_PG_URL, default postgres://postgres@127.0.0.1:5432/goticket_bench
# (the database is created if missing).
set -euo pipefail
export PGOPTIONS="--client-min-messages=warning"
cd "$(dirname "$0")/.."
rounds="${1:-3}"
cargo build --release -q -p goticket-cli
g=target/release/goticket
pg="${GOTICKET_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/goticket_bench}"
if [ -z "${GOTICKET_BENCH_PG_URL:-}" ]; then
    psql -h 127.0.0.1 -U postgres -d postgres -qtc "SELECT 1 FROM pg_database WHERE datname = 'goticket_bench'" | grep -q 1 \
        || psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE goticket_bench"
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
psql -h 127.0.0.1 -U postgres -d goticket_bench -qc "DROP SCHEMA IF EXISTS bench_run CASCADE" >/dev/null

# Every measurement gets a fresh database (a new SQLite file, a new PostgreSQL schema),
# so no configuration pays for the bookings an earlier one left behind.
fresh() {
    n=$((n + 1))
    case "$1" in
        sqlite) echo "sqlite:$dir/bench-$n.db" ;;
        postgres)
            psql -h 127.0.0.1 -U postgres -d goticket_bench -qc "DROP SCHEMA IF EXISTS bench_run CASCADE; CREATE SCHEMA bench_run" >/dev/null
            echo "$pg?options=-c%20search_path%3Dbench_run" ;;
    esac
}
n=0
first=1
for round in $(seq 1 "$rounds"); do
    for store in sqlite postgres; do
        for args in \
            "flash-sale --capacity 3000 --buyers 3000 --concurrency 64 --no-combine" \
            "flash-sale --capacity 20000 --buyers 20000 --concurrency 64" \
            "batched --capacity 20000 --batch 100"; do
            db=$(fresh "$store")
            # shellcheck disable=SC2086
            out=$("$g" --db "$db" --format csv bench $args | sed "s/,postgres?options[^,]*,/,postgres,/")
            if [ "$first" = 1 ]; then echo "round,$(echo "$out" | head -n 1)"; first=0; fi
            echo "$round,$(echo "$out" | tail -n 1)"
        done
    done
done
