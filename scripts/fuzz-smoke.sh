#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME (default 5s): a smoke test that the
# targets build and hold their properties on the seed corpus plus a little exploration.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-5s}
go=${GO:-go}
found=0
for pkg in $($go list ./...); do
	for target in $($go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
		found=$((found + 1))
		echo "fuzz $pkg $target ($fuzztime)"
		$go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -fuzzminimizetime=1x "$pkg"
	done
done
echo "fuzz smoke: $found targets"
