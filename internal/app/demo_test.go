package app

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestDemo runs a short demo: the whole system, set up through the real
// commands, with people changing issues on both sides, ends with matching
// Jiras.
func TestDemo(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	code := Main([]string{"demo", "--duration", "4s", "--rate", "3", "--settle", "60s", "--seed", "7"},
		Env{Stdout: &out, Stderr: &errb, Context: context.Background(), Getenv: func(string) string { return "" }})
	if code != 0 || !strings.Contains(out.String(), "RESULT: the two Jiras match") {
		t.Fatalf("demo: exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	for _, want := range []string{"$ jirabridge init", "$ jirabridge join", "$ jirabridge publish", "$ jirabridge start", "/status", "latency"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}
