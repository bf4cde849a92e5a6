#!/usr/bin/env bash
# Benchmark: memory and time of `import` over 1,000 and 10,000 generated delivery reports,
# and of one large incremental delivery (JSON and XML) against the file's size.
# Reading is streaming and writes are batched, so the peak memory should stay flat; a large
# document is read entry by entry, so its peak memory is a small multiple of the document.
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

# One document of about 65 MiB (JSON) and 120 MiB (XML): 200 citizens x 120 days in one file.
for format in json xml; do
  "$bin" --config config/example.toml simulate --out "$work/one-$format" --format "$format" \
    --citizens 200 --days 120 --per-file 100000 2>/dev/null
  file=$(find "$work/one-$format" -type f)
  bytes=$(stat -c %s "$file")
  /usr/bin/time -f '%M %e' -o "$work/time-$format" \
    "$bin" --config config/example.toml --database "sqlite://$work/one-$format.db" \
    import --max-file-bytes 300000000 "$work/one-$format" >/dev/null 2>&1
  read -r rss secs <"$work/time-$format"
  awk -v f="$format" -v b="$bytes" -v r="$rss" -v s="$secs" 'BEGIN {
    printf "import: one %s document of %.0f MiB: peak RSS %.0f MiB (%.1fx the document), %s s\n",
      f, b / 1048576, r / 1024, r * 1024 / b, s }'
done
