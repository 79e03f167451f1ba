#!/usr/bin/env bash
# The import benchmark behind BENCHMARKS.md: `goticket import events` of ROWS events
# (default 1,000,000) on SQLite and on PostgreSQL, next to the raw bulk-insert rate
# of the same backend into the same tables in the same run (SQLite: the sqlite3
# shell's .import and one INSERT ... SELECT; PostgreSQL: COPY). Also the peak memory
# of the import at ROWS/10 and ROWS rows, to show it streams. Needs python3, psql and the sqlite3 shell.
#
#   scripts/bench-import.sh [ROWS]
#
# PostgreSQL: GOTICKET_BENCH_PG_URL, default postgres://postgres@127.0.0.1:5432/goticket_bench
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-1000000}"
cargo build --release -q -p goticket-cli
g="$PWD/target/release/goticket"
pgadmin="postgres://postgres@127.0.0.1:5432/postgres"
pgdb="${GOTICKET_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/goticket_bench}"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

python3 - "$rows" "$dir" <<'PY'
import sys, uuid, datetime
n, d = int(sys.argv[1]), sys.argv[2]
us = lambda day, h: int(datetime.datetime(2030, 2, day, h, tzinfo=datetime.timezone.utc).timestamp() * 1_000_000)
with open(f"{d}/events.csv", "w") as f, open(f"{d}/raw.csv", "w") as raw, open(f"{d}/raw-sqlite.csv", "w") as rs:
    f.write("external_id,name,starts_at,ends_at,capacity,price,slug,venue\n")
    for i in range(n):
        day = 1 + i % 28
        f.write(f"imp-{i},Imported event {i},2030-02-{day:02d}T19:00:00Z,2030-02-{day:02d}T22:00:00Z,{100 + i % 900},{10 + i % 90}.50 EUR,imp-{i},Hall {i % 50}\n")
        rs.write(f"{uuid.uuid4()},imp-{i},Imported event {i},{us(day, 19)},{us(day, 22)},{100 + i % 900},{(10 + i % 90) * 100 + 50},EUR,scheduled,bench@example.com,0,0,{us(1, 0)},{us(1, 0)},Hall {i % 50},imp-{i}\n")
        raw.write(f"{uuid.uuid4()},imp-{i},Imported event {i},2030-02-{day:02d}T19:00:00Z,2030-02-{day:02d}T22:00:00Z,{100 + i % 900},{(10 + i % 90) * 100 + 50},EUR,scheduled,bench@example.com,0,0,2030-01-01T00:00:00Z,2030-01-01T00:00:00Z,Hall {i % 50},imp-{i}\n")
with open(f"{d}/small.csv", "w") as f, open(f"{d}/events.csv") as src:
    for j, line in enumerate(src):
        if j > n // 10:
            break
        f.write(line)
PY

now() { date +%s.%N; }
rate() { python3 -c "print(round($rows / ($2 - $1)))"; }
rss() { /usr/bin/time -f "%M" "$@" 2>&1 >/dev/null | tail -n 1; }

echo "rows: $rows"
# SQLite: goticket import (all-or-nothing, one transaction, durable commit).
t0=$(now); "$g" --db "sqlite:$dir/imp.db" --format json import events "$dir/events.csv" >/dev/null; t1=$(now)
echo "sqlite goticket import: $(rate "$t0" "$t1") rows/s"
# SQLite raw: the same table (goticket's migrations) filled by the sqlite3 shell in
# C: .import into a scratch table, then one INSERT ... SELECT, one durable commit.
"$g" --db "sqlite:$dir/raw.db" migrate >/dev/null
t0=$(now)
sqlite3 "$dir/raw.db" <<SQL
PRAGMA journal_mode=WAL;
PRAGMA synchronous=FULL;
CREATE TEMP TABLE staging (id, external_id, name, starts_at, ends_at, capacity, price_minor, currency, status,
  organizer, held, sold, created_at, updated_at, venue, slug);
.mode csv
.import $dir/raw-sqlite.csv staging
BEGIN IMMEDIATE;
INSERT INTO events (id, external_id, name, starts_at, ends_at, capacity, price_minor, currency, status, organizer,
  held, sold, created_at, updated_at, venue, slug)
SELECT id, external_id, name, CAST(starts_at AS INTEGER), CAST(ends_at AS INTEGER), CAST(capacity AS INTEGER),
  CAST(price_minor AS INTEGER), currency, status, organizer, 0, 0, CAST(created_at AS INTEGER),
  CAST(updated_at AS INTEGER), venue, slug FROM staging;
COMMIT;
SQL
t1=$(now)
echo "sqlite raw bulk insert (sqlite3 shell): $(rate "$t0" "$t1") rows/s"

# PostgreSQL: fresh database each run.
psql "$pgadmin" -qc "DROP DATABASE IF EXISTS goticket_bench" -c "CREATE DATABASE goticket_bench" >/dev/null
"$g" --db "$pgdb" migrate >/dev/null
t0=$(now); "$g" --db "$pgdb" --format json import events "$dir/events.csv" >/dev/null; t1=$(now)
echo "postgres goticket import: $(rate "$t0" "$t1") rows/s"
psql "$pgdb" -qc "CREATE SCHEMA raw" >/dev/null
"$g" --db "$pgdb?options=-c%20search_path%3Draw" migrate >/dev/null
t0=$(now)
psql "$pgdb" -qc "SET search_path = raw" -c "\copy events (id, external_id, name, starts_at, ends_at, capacity, price_minor, currency, status, organizer, held, sold, created_at, updated_at, venue, slug) FROM '$dir/raw.csv' WITH (FORMAT csv)"
t1=$(now)
echo "postgres raw COPY: $(rate "$t0" "$t1") rows/s"

# Memory: peak RSS (KiB) of an import of a tenth of the rows and of all of them.
echo "peak RSS, $((rows / 10)) rows: $(rss "$g" --db "sqlite:$dir/mem1.db" import events "$dir/small.csv") KiB"
echo "peak RSS, $rows rows: $(rss "$g" --db "sqlite:$dir/mem2.db" import events "$dir/events.csv") KiB"
