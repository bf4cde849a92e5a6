#!/usr/bin/env bash
# Benchmark: memory and time of `import` over 1,000 and 10,000 generated delivery reports.
# Reading is streaming and writes are batched, so the peak memory should stay flat.
# Usage: benches/import-memory.sh   (builds in release; prints one line per size)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/progression-gateway
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for n in 1000 10000; do
  "$bin" --config config/example.toml simulate --out "$work/in-$n" \
    --citizens 200 --days 120 --limit "$n" 2>/dev/null
  files=$(find "$work/in-$n" -type f | wc -l)
  /usr/bin/time -f '%M %e' -o "$work/time-$n" \
    "$bin" --config config/example.toml --database "sqlite://$work/gw-$n.db" \
    import "$work/in-$n" >"$work/summary-$n.json" 2>/dev/null
  read -r rss secs <"$work/time-$n"
  bundles=$(grep -m1 '"bundles"' "$work/summary-$n.json" | tr -dc '0-9')
  echo "import: $files files, $bundles bundles: peak RSS $((rss / 1024)) MiB, ${secs} s"
done
