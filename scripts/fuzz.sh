#!/usr/bin/env bash
# Runs each fuzz target for the given time (default 5m). Targets are found by
# name, so a new Fuzz function is picked up without editing this script.
set -euo pipefail
cd "$(dirname "$0")/.."
t="${1:-5m}"
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/func //' | sort -u); do
		echo "== $pkg $f ($t)"
		go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg"
	done
done
