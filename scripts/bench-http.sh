#!/usr/bin/env bash
# The HTTP load test behind BENCHMARKS.md: a release `goticket serve` on loopback (SQLite,
# then PostgreSQL), and in a separate process `goticket bench http` with CONNECTIONS
# (default 100) keep-alive connections selling one 20,000-seat event until it is sold
# out. Prints CSV. Needs curl and psql.
#
#   scripts/bench-http.sh [CONNECTIONS]
#
# GOTICKET_BIN=path runs that binary instead of building this checkout (to compare two
# builds in one run); GOTICKET_BENCH_STORES=sqlite (or postgres) runs one store only.
# GOTICKET_BENCH_TRACES=RATIO exports traces (serve --otlp-endpoint, sampled at RATIO)
# to scripts/otlp-sink.py, a collector stand-in on loopback; the CSV then ends with
# what the sink received.
set -euo pipefail
export PGOPTIONS="--client-min-messages=warning"
connections="${1:-100}"
cd "$(dirname "$0")/.."
if [ -n "${GOTICKET_BIN:-}" ]; then
    g="$GOTICKET_BIN"
else
    cargo build --release -q -p goticket-cli
    g="$PWD/target/release/goticket"
fi
dir=$(mktemp -d)
pid=""
sink=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -n "$sink" ] && kill "$sink" 2>/dev/null; rm -rf "$dir"' EXIT
pg="${GOTICKET_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/goticket_bench}"
psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'goticket_bench'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE goticket_bench"
psql -h 127.0.0.1 -U postgres -d goticket_bench -qc "DROP SCHEMA IF EXISTS bench_http CASCADE; CREATE SCHEMA bench_http"
export GOTICKET_JWT_SECRET="bench-secret-bench-secret-bench-secret"
first=1
stores="${GOTICKET_BENCH_STORES:-sqlite postgres}"
for db in "sqlite:$dir/http.db" "$pg?options=-c%20search_path%3Dbench_http"; do
    case "$db" in sqlite:*) kind=sqlite ;; *) kind=postgres ;; esac
    case " $stores " in *" $kind "*) ;; *) continue ;; esac
    echo "load test password" | "$g" --db "$db" user add --email bench@example.com --role admin --password-stdin >/dev/null
    traces=()
    if [ -n "${GOTICKET_BENCH_TRACES:-}" ]; then
        python3 scripts/otlp-sink.py >"$dir/sink.out" &
        sink=$!
        for _ in $(seq 1 50); do [ -s "$dir/sink.out" ] && break; sleep 0.1; done
        traces=(--otlp-endpoint "$(head -n 1 "$dir/sink.out")" --trace-sample-ratio "$GOTICKET_BENCH_TRACES")
    fi
    GOTICKET_LOG=warn "$g" --db "$db" serve --addr 127.0.0.1:0 "${traces[@]}" 2>"$dir/serve.log" &
    pid=$!
    for _ in $(seq 1 50); do grep -q "listening on" "$dir/serve.log" && break; sleep 0.1; done
    url=$(sed -n 's/^goticket: listening on //p' "$dir/serve.log")
    token=$(curl -s -X POST "$url/v1/auth/login" -H 'Content-Type: application/json' \
        -d '{"email":"bench@example.com","password":"load test password"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
    curl -s -o /dev/null -X POST "$url/v1/events" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        -d '{"name":"Load test","starts_at":"2090-01-01T19:00:00Z","ends_at":"2090-01-01T22:00:00Z","capacity":20000,"price":{"amount_minor":100,"currency":"EUR"},"slug":"load"}'
    out=$("$g" --db "$db" --format csv bench http --url "$url" --token "$token" --event load --concurrency "$connections")
    store=$(case "$db" in sqlite:*) echo sqlite ;; *) echo postgres ;; esac)
    kill -TERM "$pid"; wait "$pid" || true; pid=""
    exported=""
    if [ -n "$sink" ]; then
        kill -TERM "$sink"; wait "$sink" || true; sink=""
        exported=",$(tail -n 1 "$dir/sink.out" | tr ' ' ',')"
    fi
    if [ "$first" = 1 ]; then echo "server_store,$(echo "$out" | head -n 1)"; first=0; fi
    echo "$store,$(echo "$out" | tail -n 1)$exported"
done
