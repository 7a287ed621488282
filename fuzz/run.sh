#!/usr/bin/env bash
# Builds the fuzz targets and runs each for FUZZ_SECONDS (default 60, or the
# first argument) with libFuzzer. Exits non-zero if any target crashed, hung
# or ran out of memory, keeping the input and saying how to replay it.
#
#   bash fuzz/run.sh [seconds]
#   FUZZ_TARGETS="recover" FUZZ_SANITIZER=none bash fuzz/run.sh 300
#
# Stable Rust only: cargo fuzz passes -Zsanitizer, which stable rustc accepts
# under RUSTC_BOOTSTRAP=1 (its x86_64 Linux toolchain ships the ASan runtime).
# The coverage instrumentation itself (-Cpasses=sancov-module) is stable, so
# FUZZ_SANITIZER=none still fuzzes with coverage feedback, without ASan.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

seconds="${1:-${FUZZ_SECONDS:-60}}"
sanitizer="${FUZZ_SANITIZER:-address}"
targets="${FUZZ_TARGETS:-decode recover}"
case "$seconds" in
  '' | *[!0-9]*) echo "fuzz: seconds must be a whole number, got '$seconds'" >&2; exit 2 ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz is not installed; install it with: cargo install cargo-fuzz --locked" >&2
  exit 1
fi

export RUSTC_BOOTSTRAP=1

# Largest input per target: recover's inputs are whole directories (several
# 4-64 KiB segments), decode's a single segment or record.
max_len() {
  case "$1" in
    recover) echo 65536 ;;
    *) echo 16384 ;;
  esac
}

echo "fuzz: building ($sanitizer sanitizer): $targets"
start=$(date +%s)
for t in $targets; do
  cargo fuzz build -s "$sanitizer" "$t"
done
echo "fuzz: built in $(( $(date +%s) - start )) s"

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
failed=0
summary=()
for t in $targets; do
  log="$logs/$t.log"
  mkdir -p "fuzz/corpus/$t"
  status=0
  # -timeout: one input running 10 s is a hang, not a slow case.
  # -malloc_limit_mb: no input of at most max_len bytes may make the code
  #  ask for this much at once (unbounded allocation from a length field).
  cargo fuzz run -s "$sanitizer" "$t" -- \
    -max_total_time="$seconds" -max_len="$(max_len "$t")" \
    -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 -dict=fuzz/dict/wal.dict \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
  artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
  crashes=0
  if [ "$status" -ne 0 ]; then
    crashes=1
    failed=1
    echo "fuzz $t: FAILED (exit $status):" >&2
    # The failure itself: a panic's message and the lines under it, or else
    # the sanitizer's or libFuzzer's report (memory error, leak, timeout,
    # out-of-memory) with the top of its stack.
    { grep -m1 -A8 'panicked at' "$log" || grep -m1 -A20 -E '==[0-9]+== ?ERROR' "$log" || tail -40 "$log"; } | cut -c1-400 >&2
    grep -m1 '^SUMMARY' "$log" >&2 || true
    if [ -n "$artifact" ]; then
      echo >&2
      echo "fuzz $t: input kept at $artifact" >&2
      echo "fuzz $t: reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run -s $sanitizer $t $artifact" >&2
      echo "fuzz $t: minimize with:  RUSTC_BOOTSTRAP=1 cargo fuzz tmin -s $sanitizer $t $artifact" >&2
    fi
  fi
  summary+=("fuzz $t: $seconds s, ${runs:-0} runs, ${rate:-0} exec/s, cov ${cov:-0}, ft ${ft:-0}, $crashes crashes")
done

printf '%s\n' "${summary[@]}"
exit "$failed"
