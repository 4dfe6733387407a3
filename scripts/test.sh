#!/usr/bin/env bash
# Runs every check and test. Starts the real Postfix + Dovecot stack for the
# mail integration tests when scripts/mailstack.sh can (it needs root); the
# tests that need it skip with a message otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
make -s fmt-check
echo "== go vet"
go vet ./...
echo "== staticcheck"
make -s staticcheck

stackdir=""
cleanup() {
	if [ -n "$stackdir" ]; then
		bash scripts/mailstack.sh stop "$stackdir" >/dev/null 2>&1 || true
		rm -rf "$stackdir"
	fi
}
trap cleanup EXIT

if [ -x scripts/mailstack.sh ] || [ -f scripts/mailstack.sh ]; then
	if [ "$(id -u)" = "0" ]; then
		stackdir="$(mktemp -d /tmp/jbms.XXXXXX)"
		chmod 0755 "$stackdir"
		if bash scripts/mailstack.sh start "$stackdir"; then
			export JIRABRIDGE_TEST_MAILSTACK="$stackdir/env"
			echo "== real mail stack running (settings in $JIRABRIDGE_TEST_MAILSTACK)"
		else
			echo "== WARNING: the real mail stack did not start; its tests will skip"
			stackdir_failed=1
		fi
	else
		echo "== NOTE: not root: the real Postfix + Dovecot tests will be SKIPPED (run 'sudo make test' to include them)"
	fi
fi

# The status page's browser test (internal/ops) needs Debian's chromium;
# as root, install it when missing. Without it that test skips and says so.
if [ "$(id -u)" = "0" ]; then
	if ! bash scripts/browser.sh >/dev/null; then
		echo "== WARNING: chromium could not be installed; the browser test will skip"
	fi
fi

echo "== go test -race ./..."
set -o pipefail
go test -race -count=1 -timeout 60m ./... 2>&1 | tee /tmp/jirabridge-test.log
if [ "${stackdir_failed:-0}" = 1 ] || [ -z "${JIRABRIDGE_TEST_MAILSTACK:-}" ]; then
	echo "== NOTE: mail integration tests against the real stack were skipped"
fi
echo "== done (tests that skip say why with 'go test -v ./... | grep -A1 SKIP')"
