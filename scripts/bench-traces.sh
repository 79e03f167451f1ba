#!/usr/bin/env bash
# The cost of tracing, as BENCHMARKS.md reports it: scripts/bench-http.sh (SQLite, 64
# connections) with four servers in turn, ROUNDS times (default 1 2 3): OLD (a build
# without tracing, GOTICKET_OLD_BIN), and this build with export off, on at ratio 0
# (spans made, none kept) and on at ratio 1 (every span exported to
# scripts/otlp-sink.py). Prints CSV: round, mode, then bench-http.sh's columns.
#
#   GOTICKET_OLD_BIN=/tmp/goticket-old GOTICKET_NEW_BIN=target/release/goticket scripts/bench-traces.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${GOTICKET_OLD_BIN:?the binary of a build before tracing}"
new="${GOTICKET_NEW_BIN:-$PWD/target/release/goticket}"
export GOTICKET_BENCH_STORES=sqlite
rounds="${ROUNDS:-1 2 3}"
first="${rounds%% *}"
for round in $rounds; do
  for mode in old off ratio0 ratio1; do
    case $mode in
      old) out=$(GOTICKET_BIN=$GOTICKET_OLD_BIN scripts/bench-http.sh 64) ;;
      off) out=$(GOTICKET_BIN=$new scripts/bench-http.sh 64) ;;
      ratio0) out=$(GOTICKET_BIN=$new GOTICKET_BENCH_TRACES=0 scripts/bench-http.sh 64) ;;
      ratio1) out=$(GOTICKET_BIN=$new GOTICKET_BENCH_TRACES=1 scripts/bench-http.sh 64) ;;
    esac
    if [ "$round" = "$first" ] && [ $mode = old ]; then echo "round,mode,$(echo "$out" | head -n1)"; fi
    echo "$round,$mode,$(echo "$out" | tail -n1)"
  done
done
