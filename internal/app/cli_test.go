package app

import (
	"bytes"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, Env{Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "version")
	if code != ExitOK || !strings.HasPrefix(out, "jirabridge ") {
		t.Fatalf("version: code %d, out %q", code, out)
	}
}

func TestUnknownCommandIsUsageError(t *testing.T) {
	code, _, errOut := run(t, "nope")
	if code != ExitUsage || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("got code %d, stderr %q; want %d and a hint", code, errOut, ExitUsage)
	}
}

func TestHelpListsCommands(t *testing.T) {
	code, out, _ := run(t, "help")
	if code != ExitOK || !strings.Contains(out, "version") {
		t.Fatalf("help: code %d, out %q", code, out)
	}
}
