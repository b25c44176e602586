#!/usr/bin/env bash
# Go-built tools used by `make test`, installed into .tools/bin from the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
ACTIONLINT_VERSION=v1.7.12
mkdir -p .tools/bin
if [ ! -x .tools/bin/actionlint ] || ! .tools/bin/actionlint -version 2>/dev/null | grep -q "${ACTIONLINT_VERSION#v}"; then
  GOBIN="$PWD/.tools/bin" go install "github.com/rhysd/actionlint/cmd/actionlint@${ACTIONLINT_VERSION}"
fi
