#!/bin/sh
# check-gateway-tokens: refuse a gateway token file that the collector would misread.
#
#   check-gateway-tokens.sh FILE [COPY]
#
# The gateway (collector/gateway.yaml) reads its accepted tokens with the bearertokenauth
# extension's `filename`: it takes the first whitespace-separated word of every line as a
# token and ignores the rest. A comment line `# gateway tokens`, or an indented
# `   # note`, therefore becomes the token `#`, and `Authorization: Bearer #` is let in.
# This check accepts only the documented format and exits non-zero otherwise, naming
# the line and the rule (never the token):
#
#   - one token per line and nothing else on it: no comments, no leading or trailing
#     blanks, Unix line endings; empty lines are allowed
#   - a token is at least 16 characters of A-Z a-z 0-9 - . _ ~ + / followed by optional
#     `=` padding (the RFC 6750 b64token syntax; `#` and whitespace are never part of it)
#   - at least one token; FILE is a regular file (a symlink to one is fine, as in a
#     Kubernetes Secret volume) of at most 64 KiB, with no NUL byte
#
# With COPY, the checked tokens are also written to COPY (mode 0600, replaced
# atomically). Point ENSEMBLE_GATEWAY_TOKEN_FILE at COPY: the collector re-reads its
# token file whenever it changes, so reading only the checked copy keeps a later,
# unchecked edit of FILE away from it until the next start runs this check again.
#
# Exit status: 0 accepted, 1 refused (every finding printed on stderr), 2 usage error or
# FILE unreadable. POSIX sh and coreutils only, so it runs in the collector image.
set -eu
LC_ALL=C
export LC_ALL

MIN_LENGTH=16
MAX_BYTES=65536
PROG=check-gateway-tokens

usage() {
    echo "usage: $PROG FILE [COPY]" >&2
    exit 2
}

[ "$#" -ge 1 ] && [ "$#" -le 2 ] || usage
FILE=$1
COPY=${2:-}

if [ ! -e "$FILE" ]; then
    echo "$PROG: $FILE: no such file" >&2
    exit 2
fi
if [ ! -f "$FILE" ]; then
    echo "$PROG: $FILE: not a regular file" >&2
    exit 2
fi
if [ ! -r "$FILE" ]; then
    echo "$PROG: $FILE: not readable" >&2
    exit 2
fi
size=$(wc -c <"$FILE")
if [ "$size" -gt "$MAX_BYTES" ]; then
    echo "$PROG: $FILE: $size bytes; a token file holds at most $MAX_BYTES" >&2
    exit 1
fi
if [ "$(tr -d '\000' <"$FILE" | wc -c)" -ne "$size" ]; then
    echo "$PROG: $FILE: contains a NUL byte; a token file is text" >&2
    exit 1
fi

errors=0
tokens=0
number=0
refuse() {
    echo "$PROG: $FILE:$number: $1" >&2
    errors=$((errors + 1))
}

while IFS= read -r line || [ -n "$line" ]; do
    number=$((number + 1))
    [ -n "$line" ] || continue
    case $line in
        *'#'*)
            refuse "'#' is not allowed: the file holds tokens only, no comments (the collector would accept the token '#')"
            continue ;;
    esac
    case $line in
        *[[:space:]]*)
            refuse "whitespace is not allowed: one token per line and nothing else (no comments, no blanks around it, Unix line endings)"
            continue ;;
    esac
    case $line in
        *[!A-Za-z0-9._~+/=-]*)
            refuse "characters other than A-Z a-z 0-9 - . _ ~ + / and trailing = are not allowed in a token"
            continue ;;
        =* | *=[!=]*)
            refuse "'=' is allowed only as padding at the end of a token"
            continue ;;
    esac
    if [ "${#line}" -lt "$MIN_LENGTH" ]; then
        refuse "the token is ${#line} characters; at least $MIN_LENGTH are required"
        continue
    fi
    tokens=$((tokens + 1))
done <"$FILE"

if [ "$errors" -eq 0 ] && [ "$tokens" -eq 0 ]; then
    echo "$PROG: $FILE: no token (one token per line, at least $MIN_LENGTH characters each)" >&2
    errors=1
fi
if [ "$errors" -ne 0 ]; then
    echo "$PROG: $FILE: refused ($errors finding(s)); the gateway must not start with it" >&2
    exit 1
fi

if [ -n "$COPY" ]; then
    umask 077
    tmp=$(mktemp "$(dirname "$COPY")/.gateway-tokens.XXXXXX")
    trap 'rm -f "$tmp"' EXIT
    grep -v '^$' "$FILE" >"$tmp"
    chmod 0600 "$tmp"
    mv -f "$tmp" "$COPY"
    trap - EXIT
fi
echo "$PROG: $FILE: $tokens token(s) accepted" >&2
exit 0
