#!/usr/bin/env bash
# Smoke test of a bot under zero-code instrumentation (`make smoke`).
#
#   scripts/smoke.sh                       # the demo bot, paced to run ~SMOKE_SECONDS
#   scripts/smoke.sh python my_bot.py ...  # any bot command
#
# Steps, each failing with a clear message:
#   1. start the bot under `opentelemetry-instrument` (OTEL_PYTHON_DISTRO=ensemble)
#   2. wait for its heartbeat file
#   3. `ensemble-otel heartbeat check`, at start and again after SMOKE_SECONDS
#   4. stop it with SIGTERM: it must exit 0 and leave the heartbeat in state 'stopped'
#   5. `ensemble-otel validate --strict --expect ...` on everything it wrote (nothing
#      written, or no heartbeat, event or hourly snapshot, fails)
#
# Environment: SMOKE_SECONDS (default 10), SMOKE_TIMEOUT (seconds to wait for the first
# beat and for the exit, default 60), SMOKE_DIR (work directory; default a new temp dir,
# removed on success unless SMOKE_KEEP=1), SMOKE_STRATEGY (default smoke), SMOKE_EXPECT
# (record kinds `validate --expect` must find, KIND[:N] each; default: heartbeat, plus
# event and health_snapshot_1h for the demo).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$repo/.venv}
export PATH="$venv/bin:$PATH"

seconds=${SMOKE_SECONDS:-10}
timeout=${SMOKE_TIMEOUT:-60}
strategy=${SMOKE_STRATEGY:-smoke}
keep=${SMOKE_KEEP:-0}
work=${SMOKE_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/ensemble-smoke.XXXXXX")}
root="$work/root"
mkdir -p "$work"

if [ "$#" -gt 0 ]; then
  bot=("$@")
  expect=${SMOKE_EXPECT:-heartbeat}
else
  # the demo trades and closes hours: its events and hourly snapshots must be there
  expect=${SMOKE_EXPECT:-heartbeat event health_snapshot_1h}
  # EUR/USD hourly bars at 50 bars a second: more than SMOKE_SECONDS of data
  bot=(ensemble-otel demo --data EURUSD --speed 180000 --no-report)
fi

step() { printf '\n== smoke [%s] %s\n' "$1" "$2"; }
fail() {
  printf '\nSMOKE FAILED at step %s: %s\n' "$1" "$2" >&2
  if [ -s "$work/bot.err" ]; then
    printf -- '--- bot stderr (last 20 lines, %s) ---\n' "$work/bot.err" >&2
    tail -n 20 "$work/bot.err" >&2
  fi
  printf 'files kept in %s\n' "$work" >&2
  exit 1
}
bot_pid=""
cleanup() {
  if [ -n "$bot_pid" ] && kill -0 "$bot_pid" 2>/dev/null; then
    kill -KILL "$bot_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

for tool in opentelemetry-instrument ensemble-otel python; do
  command -v "$tool" >/dev/null || fail 0 "$tool not found in $venv/bin or PATH (run: make venv)"
done

heartbeat="$root/logs/heartbeat/$strategy.json"
state() { python -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"])' "$1"; }

step 1/5 "start under opentelemetry-instrument: ${bot[*]}"
echo "root: $root  strategy: $strategy"
OTEL_PYTHON_DISTRO=ensemble \
PAPER_TRADING_ROOT="$root" \
ENSEMBLE_STRATEGY_ID="$strategy" \
ENSEMBLE_HEARTBEAT_INTERVAL=1 \
  opentelemetry-instrument "${bot[@]}" >"$work/bot.out" 2>"$work/bot.err" &
bot_pid=$!
echo "pid $bot_pid"

step 2/5 "wait for the heartbeat file $heartbeat"
deadline=$((SECONDS + timeout))
until [ -s "$heartbeat" ]; do
  kill -0 "$bot_pid" 2>/dev/null || fail 2/5 "the bot exited before writing $heartbeat"
  [ "$SECONDS" -lt "$deadline" ] || fail 2/5 "no heartbeat file after ${timeout}s"
  sleep 0.1
done
echo "present: $(cat "$heartbeat")"

step 3/5 "ensemble-otel heartbeat check (now, and after ${seconds}s)"
ensemble-otel heartbeat check --root "$root" --strategy "$strategy" ||
  fail 3/5 "heartbeat check failed right after start-up"
sleep "$seconds"
kill -0 "$bot_pid" 2>/dev/null || fail 3/5 "the bot exited within ${seconds}s (expected it to run)"
ensemble-otel heartbeat check --root "$root" --strategy "$strategy" ||
  fail 3/5 "heartbeat check failed after ${seconds}s (no background beats?)"

step 4/5 "stop with SIGTERM"
kill -TERM "$bot_pid"
deadline=$((SECONDS + timeout))
while kill -0 "$bot_pid" 2>/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || fail 4/5 "the bot did not exit within ${timeout}s of SIGTERM"
  sleep 0.1
done
set +e
wait "$bot_pid"
code=$?
set -e
bot_pid=""
[ "$code" -eq 0 ] || fail 4/5 "the bot exited with status $code after SIGTERM (expected 0)"
final=$(state "$heartbeat") || fail 4/5 "cannot read $heartbeat after the stop"
[ "$final" = stopped ] || fail 4/5 "heartbeat state is '$final' after SIGTERM (expected 'stopped')"
echo "exit 0, heartbeat state: stopped"
if ensemble-otel heartbeat check --root "$root" --strategy "$strategy" 2>/dev/null; then
  fail 4/5 "heartbeat check still passes after the bot stopped"
fi
sed 's/^/  bot | /' "$work/bot.out"

step 5/5 "ensemble-otel validate --strict (expecting: $expect) $root"
if python -c 'import ensemble_otel.validate' 2>/dev/null; then
  # a run that wrote nothing must not pass: what must be there is SMOKE_EXPECT
  expect_args=()
  for kind in $expect; do expect_args+=(--expect "$kind"); done
  ensemble-otel validate --strict "${expect_args[@]}" "$root" ||
    fail 5/5 "strict validation of $root failed (expected: $expect)"
else
  echo "skipped: ensemble_otel.validate is not installed"
fi

printf '\nSMOKE OK: %s\n' "$work"
if [ "$keep" != 1 ] && [ -z "${SMOKE_DIR:-}" ]; then
  rm -rf "$work"
fi
