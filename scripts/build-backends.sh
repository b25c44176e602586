#!/usr/bin/env bash
# Builds the pinned backends of scripts/backends.versions into .tools/bin/, one after
# another (the Prometheus build alone needs about 3.4 GB of RAM: never in parallel).
#
#   scripts/build-backends.sh            # every binary
#   scripts/build-backends.sh jaeger     # only the named ones
#
# A no-op when current: .tools/bin/.<name>.stamp records the module, version, this script,
# the Go version (and for Jaeger the hash of scripts/jaeger-build/go.mod and go.sum).
# Set ENSEMBLE_BACKENDS_REBUILD=1 to force. A binary is written to a temporary file and
# renamed into place, so a rebuild works while an old copy is running.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSIONS=scripts/backends.versions
BIN_DIR=.tools/bin
JAEGER_DIR=scripts/jaeger-build

command -v go >/dev/null 2>&1 || { echo "build-backends.sh: the go command is needed" >&2; exit 1; }
# Build with this machine's Go, never fetch another toolchain.
export GOTOOLCHAIN=local
mkdir -p "$BIN_DIR"
exec 9>"$BIN_DIR/.backends.lock"
flock 9

go_version="$(go env GOVERSION)"
script_hash="$(sha256sum "$0" | cut -d' ' -f1)"

stamp_for() {  # name module version
  local extra=""
  if [ "$1" = jaeger ]; then
    extra="$(cat "$JAEGER_DIR/go.mod" "$JAEGER_DIR/go.sum" | sha256sum | cut -d' ' -f1)"
  fi
  printf '%s %s %s %s %s %s\n' "$1" "$2" "$3" "$go_version" "$script_hash" "$extra"
}

build_one() {  # name module version
  local name="$1" module="$2" version="$3"
  local target="$BIN_DIR/$name" stamp_file="$BIN_DIR/.$name.stamp" stamp
  stamp="$(stamp_for "$name" "$module" "$version")"
  if [ "${ENSEMBLE_BACKENDS_REBUILD:-0}" != 1 ] && [ -x "$target" ] && [ -f "$stamp_file" ] \
     && [ "$(cat "$stamp_file")" = "$stamp" ]; then
    return 0
  fi
  rm -f "$stamp_file"
  local tmp started
  tmp="$(mktemp -d "$BIN_DIR/.build-$name.XXXXXX")"
  started=$SECONDS
  echo "build-backends.sh: building $name $version" >&2
  if [ "$name" = jaeger ]; then
    (cd "$JAEGER_DIR" && go build -trimpath -buildvcs=false -ldflags='-s -w' -o "$OLDPWD/$tmp/$name" "$module")
  else
    GOBIN="$PWD/$tmp" go install -trimpath -ldflags='-s -w' "$module@$version"
  fi
  # Rename, never copy over: a running binary cannot be overwritten ("Text file busy").
  mv -f "$tmp/$name" "$target"
  rmdir "$tmp"
  printf '%s' "$stamp" > "$stamp_file"
  echo "build-backends.sh: built $name $version in $((SECONDS - started)) s" >&2
}

wanted=("$@")
found=0
while read -r name module version; do
  case "$name" in ''|'#'*) continue ;; esac
  if [ ${#wanted[@]} -gt 0 ] && [[ ! " ${wanted[*]} " == *" $name "* ]]; then
    continue
  fi
  found=$((found + 1))
  build_one "$name" "$module" "$version"
done < "$VERSIONS"
if [ ${#wanted[@]} -gt 0 ] && [ "$found" -ne ${#wanted[@]} ]; then
  echo "build-backends.sh: unknown name in: ${wanted[*]} (see $VERSIONS)" >&2
  exit 2
fi
