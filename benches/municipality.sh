#!/usr/bin/env bash
# Benchmark: a municipality's year, from import to the nightly run, on SQLite and PostgreSQL.
#
# Usage: benches/municipality.sh [CITIZENS] [DAYS]      (default 10000 365)
#   BACKENDS="sqlite postgres"   which stores to measure (PostgreSQL at 127.0.0.1:5432, user postgres)
#   PER_FILE=500                 delivery reports per file (incremental deliveries)
#   FORMAT=json                  json or xml
#   KEEP=DIR                     keep the generated files and stores in DIR
#
# Generates the municipality with `simulate --by-day` (the last day's reports kept apart as the
# night's increment), measures a bare parse of the same files (the baseline), then per backend:
# the import of every day but the last, a full recompute (`post --dry-run`: every decision,
# income, delta and finding, nothing stored), the first night (`post`: records every decision
# and creates the vouchers), the nightly increment (import the last day, then `post`), and the
# steering figures of the whole year (`figures`, every stored kind).
# Prints one table: wall time, peak RSS, throughput, ratio to the baseline, store size.
set -euo pipefail
cd "$(dirname "$0")/.."
citizens=${1:-10000}
days=${2:-365}
backends=${BACKENDS:-sqlite postgres}
per_file=${PER_FILE:-500}
format=${FORMAT:-json}
start=2027-01-01

cargo build --release --quiet --bin progression-gateway --example bare_parse
bin=$PWD/target/release/progression-gateway
bare=$PWD/target/release/examples/bare_parse
if [ -n "${KEEP:-}" ]; then work=$KEEP; mkdir -p "$work"; else work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; fi

last=$(date -d "$start + $((days - 1)) days" +%F)
before=$(date -d "$last - 1 day" +%F)
mappings=$PWD/mappings
sed -e "s|^dir = \"../mappings\"|dir = \"$mappings\"|" config/example.toml >"$work/gateway.toml"
cat >>"$work/gateway.toml" <<TOML

[finance]
[finance.format.opus]
municipality_code = "0751"
data_provider_id = "PGW"
company_code = "0751"
sender = "PROGRESSION-GATEWAY"
receiver = "KMD-OPUS"
[finance.transport]
kind = "folder"
dir = "opus-out"
reply_dir = "opus-in"
TOML
mkdir -p "$work/opus-out" "$work/opus-in"
gw=("$bin" --config "$work/gateway.toml")

echo "generating $citizens citizens x $days days ($format, $per_file reports per file) ..." >&2
rm -rf "$work/in" "$work/night"
/usr/bin/time -f '%e %M' -o "$work/t-sim" "${gw[@]}" simulate --out "$work/in" --citizens "$citizens" \
  --days "$days" --start "$start" --by-day --per-file "$per_file" --format "$format" 2>"$work/sim.log"
mkdir -p "$work/night"
[ -d "$work/in/$last" ] && mv "$work/in/$last" "$work/night/"
files=$(find "$work/in" -type f | wc -l)
bytes=$(du -sb "$work/in" | cut -f1)

echo "bare parse ..." >&2
read -r base_files base_bytes base_resources base_secs < <("$bare" "$work/in" |
  sed -E 's/[^0-9. ]//g; s/ +/ /g; s/^ //')

# measure LABEL COMMAND...: runs it, records wall seconds, peak RSS (MiB) and the peak of the
# process's own memory (RssAnon, sampled every 100 ms; RSS also counts the pages of a file it
# maps, which are the OS page cache, as the figures' read of SQLite does).
declare -A wall rss own
measure() {
  local label=$1; shift
  /usr/bin/time -f '%e %M' -o "$work/t" "$@" >"$work/out-$label.json" 2>"$work/err-$label.log" &
  local timer=$! peak=0 child a
  while kill -0 "$timer" 2>/dev/null; do
    child=$(pgrep -P "$timer" | head -1 || true)
    a=$([ -n "$child" ] && awk '/^RssAnon/ {print $2}' "/proc/$child/status" 2>/dev/null || true)
    if [ -n "$a" ] && [ "$a" -gt "$peak" ]; then peak=$a; fi
    sleep 0.1
  done
  wait "$timer" || { echo "$label failed:" >&2; tail -5 "$work/err-$label.log" >&2; exit 1; }
  read -r w r <"$work/t"
  wall[$label]=$w; rss[$label]=$((r / 1024)); own[$label]=$((peak / 1024))
}

rows=()
for backend in $backends; do
  case $backend in
    sqlite) url="sqlite://$work/gw.db"; rm -f "$work"/gw.db*;;
    postgres)
      psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS pgw_bench" -c "CREATE DATABASE pgw_bench" postgres
      url="postgres://postgres@127.0.0.1:5432/pgw_bench";;
    *) echo "unknown backend $backend" >&2; exit 2;;
  esac
  rm -rf "$work/opus-out"/* "$work/opus-in"/*
  echo "$backend: import ..." >&2
  measure "import-$backend" "${gw[@]}" --database "$url" import "$work/in"
  versions=$(grep -m1 '"stored"' "$work/out-import-$backend.json" | tr -dc '0-9')
  echo "$backend: full recompute ..." >&2
  measure "recompute-$backend" "${gw[@]}" --database "$url" post --dry-run --as-of "$before"
  echo "$backend: first night ..." >&2
  measure "first-$backend" "${gw[@]}" --database "$url" post --as-of "$before"
  echo "$backend: nightly increment ..." >&2
  measure "night-import-$backend" "${gw[@]}" --database "$url" import "$work/night"
  measure "night-post-$backend" "${gw[@]}" --database "$url" post --as-of "$last"
  echo "$backend: steering figures ..." >&2
  measure "figures-$backend" "${gw[@]}" --database "$url" figures --from "$start" --to "$last" --format csv
  case $backend in
    sqlite) "${gw[@]}" --database "$url" runs --last 1 >/dev/null  # checkpoint by opening
            size=$(du -cb "$work"/gw.db* | tail -1 | cut -f1);;
    postgres) size=$(psql -At -h 127.0.0.1 -U postgres -c "SELECT pg_database_size('pgw_bench')" postgres);;
  esac
  rows+=("$backend|$versions|$size")
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b > 0 ? a / b : 0) }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%\047d", (s > 0 ? n / s : 0) }'; }
echo
echo "municipality: $citizens citizens x $days days; $files files, $((bytes / 1048576)) MiB of $format, $base_resources resources"
echo "machine: $(nproc) cores; simulate took $(cut -d' ' -f1 "$work/t-sim") s"
echo "bare parse (one thread, serde_json::Value / quick-xml events): ${base_secs} s, $(rate "$base_resources" "$base_secs") resources/s"
echo
printf '%-9s | %-23s | %9s | %9s | %9s | %16s | %8s\n' backend step "wall s" "peak MiB" "own MiB" "resources/s" "x parse"
printf -- '----------|-------------------------|-----------|-----------|-----------|------------------|---------\n'
for row in "${rows[@]}"; do
  IFS='|' read -r backend versions size <<<"$row"
  i=import-$backend
  printf '%-9s | %-23s | %9s | %9s | %9s | %16s | %8s\n' "$backend" "import (all but last)" "${wall[$i]}" "${rss[$i]}" "${own[$i]}" \
    "$(rate "$base_resources" "${wall[$i]}")" "$(ratio "${wall[$i]}" "$base_secs")"
  for step in recompute first night-import night-post figures; do
    k=$step-$backend
    case $step in
      recompute) name="full recompute";; first) name="first night (records)";;
      night-import) name="night: import 1 day";; night-post) name="night: compute+post";;
      figures) name="steering figures (year)";;
    esac
    printf '%-9s | %-23s | %9s | %9s | %9s | %16s | %8s\n' "$backend" "$name" "${wall[$k]}" "${rss[$k]}" "${own[$k]}" "" ""
  done
  echo "$backend store: $((size / 1048576)) MiB for $versions record versions = $((size / (versions > 0 ? versions : 1))) bytes per version"
  echo "$backend night: $(grep -o 'recomputed=[0-9]* reused=[0-9]*' "$work/err-night-post-$backend.log" | tail -1) citizens"
done
