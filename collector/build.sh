#!/usr/bin/env bash
# Builds collector/_build/otelcol-ensemble from builder-config.yaml with the
# OpenTelemetry Collector Builder, fetched through the Go module proxy by `go run`.
#
# Does nothing when the binary is current: the stamp beside it records a hash of
# builder-config.yaml, this script and the Go version that built it. The usual Go
# caches (GOCACHE, GOMODCACHE) are reused, so a rebuild after a manifest change only
# compiles what changed. Set ENSEMBLE_COLLECTOR_REBUILD=1 to force a build.
set -euo pipefail
cd "$(dirname "$0")"

BUILDER_VERSION=v0.161.0  # keep equal to the core release in builder-config.yaml
OUT=_build
BIN="$OUT/otelcol-ensemble"
STAMP="$OUT/.stamp"

command -v go >/dev/null 2>&1 || { echo "collector/build.sh: the go command is needed" >&2; exit 1; }

stamp="$(cat builder-config.yaml build.sh | sha256sum | cut -d' ' -f1) $(go env GOVERSION)"

mkdir -p "$OUT"
# One build at a time (two `make` runs may start together).
exec 9>"$OUT/.lock"
flock 9

if [ "${ENSEMBLE_COLLECTOR_REBUILD:-0}" != 1 ] && [ -x "$BIN" ] && [ -f "$STAMP" ] \
   && [ "$(cat "$STAMP")" = "$stamp" ]; then
  exit 0
fi

rm -f "$STAMP"
echo "collector/build.sh: building $BIN with builder $BUILDER_VERSION" >&2
# GOTOOLCHAIN=local: build with this machine's Go, never fetch another toolchain.
GOTOOLCHAIN=local go run "go.opentelemetry.io/collector/cmd/builder@${BUILDER_VERSION}" \
  --config builder-config.yaml
"$BIN" --version >/dev/null
printf '%s\n' "$stamp" > "$STAMP"
echo "collector/build.sh: built $("$BIN" --version)" >&2
