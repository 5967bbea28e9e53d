#!/usr/bin/env bash
# tests/run.sh BUILD_DIR: run every suite against the binaries in BUILD_DIR
# (the ASan+UBSan build) and print one closing line "N passed, N failed".
#   1. C unit tests (cmocka), each binary in BUILD_DIR/tests/
#   2. interop tests (pytest + PyKMIP against a real kmsd), tests/interop/
#   3. a libFuzzer smoke run of FUZZ_SMOKE_SECONDS (15) per fuzz target (11
#      targets: ttlv, ttlv_json, ttlv_xml, conf, kmip, admin, backup,
#      repl_frame, store_clocks, keyformat, http), FUZZ_SMOKE_JOBS (the CPU
#      count) at a time: 90 s on 2 CPUs, when clang is present
# Exits non-zero if anything failed. KMS_SKIP_FUZZ=1 skips step 3.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-asan}
export KMSD_BUILD=$PWD/$BUILD
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
PY=/usr/bin/python3
passed=0 failed=0 skipped=0
failures=()
logdir=$(mktemp -d /tmp/kmsd-test.XXXXXX)

echo "== unit tests ($BUILD)"
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] && [ -f "$t" ] || continue
  case "$t" in *.d) continue;; esac
  name=$(basename "$t")
  out="$logdir/$name.log"
  t0=$SECONDS
  timeout 600 "$t" >"$out" 2>&1
  rc=$?
  secs=$((SECONDS - t0))
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]\+\) test.*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]\+\) test.*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # crashed or sanitizer abort
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$f" -gt 0 ]; then
    failures+=("$name"); echo "  FAIL $name (exit $rc): see $out"; tail -30 "$out" | sed 's/^/    /'
  else
    echo "  ok   $name ($p, ${secs} s)"
  fi
done

if ls tests/interop/test_*.py >/dev/null 2>&1; then
  echo "== interop tests (pytest + PyKMIP)"
  xml="$logdir/interop.xml"
  export KMS_TEST_REPORT="$logdir/figures.txt"   # kmsd_harness.report() lines
  (cd tests/interop && timeout 2400 $PY -m pytest -q -p no:cacheprovider --durations=15 --junitxml="$xml" . ) \
    >"$logdir/interop.log" 2>&1
  rc=$?
  tail -60 "$logdir/interop.log"
  if [ -s "$KMS_TEST_REPORT" ]; then
    echo "== figures measured by the interop tests"
    sed 's/^/  /' "$KMS_TEST_REPORT"
  fi
  if [ -f "$xml" ]; then
    read -r t f e s < <($PY - "$xml" <<'PYEOF'
import sys, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot()
suites = [r] if r.tag == 'testsuite' else list(r)
t=f=e=s=0
for x in suites:
    t += int(x.get('tests', 0)); f += int(x.get('failures', 0))
    e += int(x.get('errors', 0)); s += int(x.get('skipped', 0))
print(t, f, e, s)
PYEOF
)
    passed=$((passed + t - f - e - s)); failed=$((failed + f + e)); skipped=$((skipped + s))
    [ $((f + e)) -gt 0 ] && failures+=("interop")
  elif [ "$rc" -ne 0 ]; then
    failed=$((failed + 1)); failures+=("interop (no report, exit $rc)")
  fi
fi

if [ "${KMS_SKIP_FUZZ:-0}" != 1 ] && command -v clang >/dev/null 2>&1 && ls tests/fuzz/fuzz_*.c >/dev/null 2>&1; then
  # 15 s per target; as many targets at once as there are CPUs (each
  # libFuzzer run is one thread), so the smoke stays a few minutes as
  # targets are added. Long runs are done by hand (tests/fuzz/README.md).
  smoke=${FUZZ_SMOKE_SECONDS:-15}
  jobs=${FUZZ_SMOKE_JOBS:-$(nproc 2>/dev/null || echo 1)}
  echo "== fuzz smoke ($smoke s per target, $jobs at a time)"
  if make --no-print-directory -j"$jobs" fuzz >"$logdir/fuzz-build.log" 2>&1; then
    fuzz_one() {  # fuzz_one TARGET: exit status of its run, log in $logdir
      local f=$1 name work corpus
      name=$(basename "$f")
      corpus=tests/fuzz/corpus/${name#fuzz_}
      work=$(mktemp -d "$logdir/$name.XXXX")
      [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/ 2>/dev/null
      # every input that once failed this target is run again first
      cp tests/fuzz/regressions/"${name#fuzz_}"-* "$work"/ 2>/dev/null
      (cd "$logdir" && timeout 180 "$OLDPWD/$f" -max_total_time="$smoke" -timeout=10 \
         -rss_limit_mb=2048 -print_final_stats=1 "$work") >"$logdir/$name.log" 2>&1
      echo $? >"$logdir/$name.rc"
    }
    targets=(build-fuzz/fuzz_*)
    for ((i = 0; i < ${#targets[@]}; i += jobs)); do
      for f in "${targets[@]:i:jobs}"; do fuzz_one "$f" & done
      wait
    done
    for f in "${targets[@]}"; do
      name=$(basename "$f")
      if [ "$(cat "$logdir/$name.rc" 2>/dev/null)" = 0 ]; then
        passed=$((passed + 1)); echo "  ok   $name ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logdir/$name.log" | grep -o '[0-9]*$') execs)"
      else
        failed=$((failed + 1)); failures+=("$name"); echo "  FAIL $name: see $logdir/$name.log"; tail -20 "$logdir/$name.log"
      fi
    done
  else
    failed=$((failed + 1)); failures+=("fuzz build"); tail -20 "$logdir/fuzz-build.log"
  fi
fi

echo
[ ${#failures[@]} -gt 0 ] && echo "failed suites: ${failures[*]} (logs in $logdir)"
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ] && [ $((passed)) -gt 0 ]
