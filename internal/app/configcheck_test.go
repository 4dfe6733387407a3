package app

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const checkSecret = "CHECK-S3CRET-w9Pq"

func validCheckEnv() map[string]string {
	return map[string]string{
		"JIRABRIDGE_JIRA_BASE_URL":     "https://jira.example.org",
		"JIRABRIDGE_JIRA_USER":         "sync-bot",
		"JIRABRIDGE_JIRA_PASSWORD":     checkSecret + "-jira",
		"JIRABRIDGE_SMTP_HOST":         "smtp.example.org",
		"JIRABRIDGE_SMTP_USER":         "bridge",
		"JIRABRIDGE_SMTP_PASSWORD":     checkSecret + "-smtp",
		"JIRABRIDGE_SMTP_FROM":         "bridge-a@example.org",
		"JIRABRIDGE_SMTP_PEER_ADDRESS": "bridge-b@partner.example.com",
		"JIRABRIDGE_IMAP_HOST":         "imap.example.org",
		"JIRABRIDGE_IMAP_USER":         "bridge",
		"JIRABRIDGE_IMAP_PASSWORD":     checkSecret + "-imap",
	}
}

func runCheck(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := Env{Stdout: &out, Stderr: &errb}
	if env != nil {
		e.Getenv = func(k string) string { return env[k] }
	}
	code := Main(append([]string{"config", "check"}, args...), e)
	return code, out.String(), errb.String()
}

func TestConfigCheckValid(t *testing.T) {
	t.Parallel()
	env := validCheckEnv()
	env["JIRABRIDGE_SYNC_FILE"] = "../../deploy/sync.example.yaml"
	code, out, errOut := runCheck(t, env)
	if code != ExitOK {
		t.Fatalf("code %d, stderr:\n%s", code, errOut)
	}
	for _, want := range []string{
		"JIRABRIDGE_SMTP_HOST", "smtp.example.org", "JIRABRIDGE_JIRA_PASSWORD", "<secret>",
		`sync "partner-support", project SUP`, "deletes of partner issues: keep", "\nOK\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errOut, checkSecret) {
		t.Errorf("output leaks a secret:\n%s%s", out, errOut)
	}
}

func TestConfigCheckNoGetenvReportsProblems(t *testing.T) {
	t.Parallel()
	code, out, errOut := runCheck(t, nil)
	if code != ExitUsage {
		t.Fatalf("code %d, want %d", code, ExitUsage)
	}
	if out != "" {
		t.Errorf("stdout not empty on problems:\n%s", out)
	}
	for _, want := range []string{"JIRABRIDGE_JIRA_BASE_URL is required", "JIRABRIDGE_IMAP_HOST is required", "problems:"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

func TestConfigCheckReportsEnvAndSyncProblemsTogether(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sync := filepath.Join(dir, "sync.yaml")
	if err := os.WriteFile(sync, []byte("name: s\nproject: AB\nissue_types: {Bug: bug}\nfields:\n  - {local: a, alias: a, direction: sideways}\nfoo: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := validCheckEnv()
	env["JIRABRIDGE_SYNC_FILE"] = sync
	env["JIRABRIDGE_SMTP_TLS_MODE"] = "plain"
	env["JIRABRIDGE_IMAP_PASSWORD"] = ""
	code, _, errOut := runCheck(t, env)
	if code != ExitUsage {
		t.Fatalf("code %d, want %d", code, ExitUsage)
	}
	for _, want := range []string{
		"config check: 4 problems:",
		"  - JIRABRIDGE_SMTP_TLS_MODE=plain is only allowed for a loopback host; set it to starttls or tls",
		"  - JIRABRIDGE_IMAP_PASSWORD (or JIRABRIDGE_IMAP_PASSWORD_FILE) is required",
		"  - " + sync + `:5: fields[0].direction: "sideways" is not one of both, outgoing, incoming`,
		"  - " + sync + ":6: foo: unknown key",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, checkSecret) {
		t.Errorf("stderr leaks a secret:\n%s", errOut)
	}
}

func TestConfigCheckWarnings(t *testing.T) {
	t.Parallel()
	env := validCheckEnv()
	env["JIRABRIDGE_JIRA_TLS_DANGEROUSLY_SKIP_VERIFY"] = "true"
	code, out, errOut := runCheck(t, env)
	if code != ExitOK {
		t.Fatalf("code %d:\n%s", code, errOut)
	}
	if !strings.Contains(out, "Warnings:\n  - JIRABRIDGE_JIRA_TLS_DANGEROUSLY_SKIP_VERIFY=true") || !strings.Contains(out, "No sync definition file") {
		t.Errorf("stdout:\n%s", out)
	}
}

func TestConfigCheckUsage(t *testing.T) {
	t.Parallel()
	if code, _, _ := runCheck(t, nil, "extra"); code != ExitUsage {
		t.Errorf("extra argument: code %d, want %d", code, ExitUsage)
	}
	if code, _, errOut := runCheck(t, nil, "--help"); code != ExitOK || !strings.Contains(errOut, "Usage: jirabridge config check") {
		t.Errorf("--help: code %d, stderr %q", code, errOut)
	}
}
