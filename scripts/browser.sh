#!/usr/bin/env bash
# browser.sh makes sure Debian's chromium is installed, for the status page's
# browser test (internal/ops). It installs the package with apt-get when it is
# missing and the script runs as root; otherwise it says what to do and exits
# non-zero, and the test skips with the same advice.
#
# Usage: scripts/browser.sh        install if needed, print the binary's path
set -euo pipefail

find_chromium() {
	for c in chromium chromium-browser; do
		if command -v "$c" >/dev/null 2>&1; then
			command -v "$c"
			return 0
		fi
	done
	return 1
}

if path="$(find_chromium)"; then
	echo "$path"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "chromium is not installed; run as root: apt-get install -y --no-install-recommends chromium" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends chromium >&2; then
	apt-get update >&2
	apt-get install -y --no-install-recommends chromium >&2
fi
find_chromium
