package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"
)

const marker = "S3CR3T-MARKER-q7Zx"

// validEnv is a complete, valid smtp+imap configuration.
func validEnv() map[string]string {
	return map[string]string{
		"JIRABRIDGE_JIRA_BASE_URL":       "https://jira.example.org",
		"JIRABRIDGE_JIRA_USER":           "sync-bot",
		"JIRABRIDGE_JIRA_PASSWORD":       marker + "-jira",
		"JIRABRIDGE_SMTP_HOST":           "smtp.example.org",
		"JIRABRIDGE_SMTP_USER":           "bridge",
		"JIRABRIDGE_SMTP_PASSWORD":       marker + "-smtp",
		"JIRABRIDGE_SMTP_FROM":           "bridge-a@example.org",
		"JIRABRIDGE_SMTP_PEER_ADDRESS":   "bridge-b@partner.example.com",
		"JIRABRIDGE_IMAP_HOST":           "imap.example.org",
		"JIRABRIDGE_IMAP_USER":           "bridge",
		"JIRABRIDGE_IMAP_PASSWORD":       marker + "-imap",
		"JIRABRIDGE_OPS_WEBHOOK_URL":     "https://hooks.example.org/" + marker + "-hook",
		"JIRABRIDGE_STATUS_ACTION_TOKEN": marker + "-token-long-enough",
		"JIRABRIDGE_OPS_ALERT_TO":        "ops@example.org, oncall@example.org",
	}
}

func getenvFrom(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(out, kv[i])
		} else {
			out[kv[i]] = kv[i+1]
		}
	}
	return out
}

func TestLoadValid(t *testing.T) {
	t.Parallel()
	c, err := Load(getenvFrom(validEnv()))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"DataDir", c.DataDir, "./data"},
		{"Transport", c.Transport, TransportMail},
		{"PollInterval", c.PollInterval, 5 * time.Second},
		{"HTTPListen", c.HTTPListen, "127.0.0.1:8080"},
		{"Jira.AuthMode", c.Jira.AuthMode, AuthBasic},
		{"Jira.Password", c.Jira.Password.Reveal(), marker + "-jira"},
		{"SMTP.Port", c.SMTP.Port, 587},
		{"SMTP.TLSMode", c.SMTP.TLSMode, TLSStartTLS},
		{"SMTP.MaxMessageSize", c.SMTP.MaxMessageSize, ByteSize(10_000_000)},
		{"IMAP.Port", c.IMAP.Port, 993},
		{"IMAP.Mailbox", c.IMAP.Mailbox, "INBOX"},
		{"IMAP.ProcessedFolder", c.IMAP.ProcessedFolder, "jirabridge/processed"},
		{"IMAP.QuarantineFolder", c.IMAP.QuarantineFolder, "jirabridge/quarantine"},
		{"IMAP.AfterStore", c.IMAP.AfterStore, AfterStoreMove},
		{"Ops.AlertTo", c.Ops.AlertTo, []string{"ops@example.org", "oncall@example.org"}},
		{"Tuning.ReplayWorkers", c.ReplayWorkers, 4},
		{"Tuning.BatchMaxBytes", c.BatchMaxBytes, ByteSize(5_000_000)},
		{"LogLevel", c.SlogLevel(), slog.LevelInfo},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestLoadFileTransport(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"JIRABRIDGE_JIRA_BASE_URL":          "http://127.0.0.1:9000",
		"JIRABRIDGE_JIRA_USER":              "sync",
		"JIRABRIDGE_JIRA_AUTH_MODE":         "bearer",
		"JIRABRIDGE_JIRA_TOKEN":             "pat",
		"JIRABRIDGE_TRANSPORT":              "file",
		"JIRABRIDGE_FILEDROP_OUTGOING_DIR":  "/mnt/share/a-to-b",
		"JIRABRIDGE_FILEDROP_INCOMING_DIR":  "/mnt/share/b-to-a",
		"JIRABRIDGE_HEARTBEAT_INTERVAL":     "1m",
		"JIRABRIDGE_PEER_SILENCE_THRESHOLD": "2m",
		"JIRABRIDGE_LOG_FORMAT":             "json",
		"JIRABRIDGE_LOG_LEVEL":              "debug",
	}
	c, err := Load(getenvFrom(env))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Transport != TransportFile || c.FileDrop.OutgoingDir != "/mnt/share/a-to-b" || c.HeartbeatInterval != time.Minute {
		t.Errorf("got %+v", c)
	}
	if c.SlogLevel() != slog.LevelDebug || c.LogFormat != LogJSON {
		t.Errorf("log: %v %v", c.SlogLevel(), c.LogFormat)
	}
}

func TestLoadNilGetenvReportsEveryRequired(t *testing.T) {
	t.Parallel()
	_, err := Load(nil)
	if err == nil {
		t.Fatal("Load(nil) succeeded")
	}
	for _, want := range []string{
		"JIRABRIDGE_JIRA_BASE_URL is required",
		"JIRABRIDGE_JIRA_USER is required",
		"JIRABRIDGE_JIRA_PASSWORD (or JIRABRIDGE_JIRA_PASSWORD_FILE) is required",
		"JIRABRIDGE_SMTP_HOST is required",
		"JIRABRIDGE_SMTP_FROM is required",
		"JIRABRIDGE_SMTP_PEER_ADDRESS is required",
		"JIRABRIDGE_IMAP_HOST is required",
		"JIRABRIDGE_IMAP_USER is required",
		"JIRABRIDGE_IMAP_PASSWORD (or JIRABRIDGE_IMAP_PASSWORD_FILE) is required",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestValidateProblems(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		kv   []string
		want []string
	}{
		{"plain smtp to remote host", []string{"JIRABRIDGE_SMTP_TLS_MODE", "plain"},
			[]string{"JIRABRIDGE_SMTP_TLS_MODE=plain is only allowed for a loopback host; set it to starttls or tls"}},
		{"plain smtp to loopback is fine", []string{"JIRABRIDGE_SMTP_TLS_MODE", "plain", "JIRABRIDGE_SMTP_HOST", "127.0.0.1"}, nil},
		{"plain imap to localhost is fine", []string{"JIRABRIDGE_IMAP_TLS_MODE", "plain", "JIRABRIDGE_IMAP_HOST", "localhost"}, nil},
		{"plain imap to remote", []string{"JIRABRIDGE_IMAP_TLS_MODE", "plain"},
			[]string{"JIRABRIDGE_IMAP_TLS_MODE=plain is only allowed for a loopback host"}},
		{"bad tls mode", []string{"JIRABRIDGE_SMTP_TLS_MODE", "ssl"}, []string{`JIRABRIDGE_SMTP_TLS_MODE="ssl" is not one of tls, starttls, plain`}},
		{"bad transport", []string{"JIRABRIDGE_TRANSPORT", "pigeon"}, []string{`JIRABRIDGE_TRANSPORT="pigeon" is not one of smtp+imap, file`}},
		{"bad duration", []string{"JIRABRIDGE_POLL_INTERVAL", "soon"}, []string{`JIRABRIDGE_POLL_INTERVAL="soon": not a duration`}},
		{"short poll", []string{"JIRABRIDGE_POLL_INTERVAL", "10ms"}, []string{"JIRABRIDGE_POLL_INTERVAL=10ms is too short"}},
		{"bad int", []string{"JIRABRIDGE_SMTP_PORT", "abc"}, []string{`JIRABRIDGE_SMTP_PORT="abc": not a whole number`}},
		{"bad port", []string{"JIRABRIDGE_IMAP_PORT", "70000"}, []string{"JIRABRIDGE_IMAP_PORT=70000 is not a port"}},
		{"bad size", []string{"JIRABRIDGE_SMTP_MAX_MESSAGE_SIZE", "big"}, []string{`JIRABRIDGE_SMTP_MAX_MESSAGE_SIZE="big"`}},
		{"batch larger than mail", []string{"JIRABRIDGE_BATCH_MAX_BYTES", "20MB"}, []string{"JIRABRIDGE_BATCH_MAX_BYTES=20MB does not fit"}},
		{"bad url", []string{"JIRABRIDGE_JIRA_BASE_URL", "jira.example.org"}, []string{`JIRABRIDGE_JIRA_BASE_URL="jira.example.org" is not an http(s) URL`}},
		{"url with credentials", []string{"JIRABRIDGE_JIRA_BASE_URL", "https://u:p@jira.example.org"}, []string{"JIRABRIDGE_JIRA_BASE_URL must not contain credentials"}},
		{"token with basic", []string{"JIRABRIDGE_JIRA_TOKEN", "x"}, []string{"JIRABRIDGE_JIRA_TOKEN is set but JIRABRIDGE_JIRA_AUTH_MODE=basic"}},
		{"bearer without token", []string{"JIRABRIDGE_JIRA_AUTH_MODE", "bearer"}, []string{"JIRABRIDGE_JIRA_TOKEN (or JIRABRIDGE_JIRA_TOKEN_FILE) is required", "JIRABRIDGE_JIRA_PASSWORD is set but"}},
		{"bad auth", []string{"JIRABRIDGE_JIRA_AUTH_MODE", "kerberos"}, []string{`JIRABRIDGE_JIRA_AUTH_MODE="kerberos" is not one of basic, bearer`}},
		{"missing ca", []string{"JIRABRIDGE_JIRA_CA_FILE", filepath.Join(dir, "nope.pem")}, []string{"JIRABRIDGE_JIRA_CA_FILE: open"}},
		{"not pem", []string{"JIRABRIDGE_SMTP_CA_FILE", notPEM}, []string{"JIRABRIDGE_SMTP_CA_FILE=" + notPEM + " holds no PEM certificate"}},
		{"skip verify with ca", []string{"JIRABRIDGE_JIRA_TLS_DANGEROUSLY_SKIP_VERIFY", "true", "JIRABRIDGE_IMAP_CA_FILE", notPEM, "JIRABRIDGE_JIRA_CA_FILE", notPEM},
			[]string{"JIRABRIDGE_JIRA_TLS_DANGEROUSLY_SKIP_VERIFY and JIRABRIDGE_JIRA_CA_FILE are both set", "JIRABRIDGE_IMAP_CA_FILE="}},
		{"peer equals from", []string{"JIRABRIDGE_SMTP_PEER_ADDRESS", "bridge-a@example.org"}, []string{"JIRABRIDGE_SMTP_PEER_ADDRESS equals JIRABRIDGE_SMTP_FROM"}},
		{"bad from", []string{"JIRABRIDGE_SMTP_FROM", "Bridge <a@b.org>"}, []string{`JIRABRIDGE_SMTP_FROM="Bridge <a@b.org>" is not a plain mail address`}},
		{"smtp user without password", []string{"JIRABRIDGE_SMTP_PASSWORD", ""}, []string{"JIRABRIDGE_SMTP_PASSWORD (or JIRABRIDGE_SMTP_PASSWORD_FILE) is required when JIRABRIDGE_SMTP_USER is set"}},
		{"bad after store", []string{"JIRABRIDGE_IMAP_AFTER_STORE", "keep"}, []string{`JIRABRIDGE_IMAP_AFTER_STORE="keep" is not one of move, delete`}},
		{"processed = mailbox", []string{"JIRABRIDGE_IMAP_PROCESSED_FOLDER", "inbox"}, []string{"JIRABRIDGE_IMAP_PROCESSED_FOLDER equals JIRABRIDGE_IMAP_MAILBOX"}},
		{"bad alert address", []string{"JIRABRIDGE_OPS_ALERT_TO", "ops@example.org,nobody"}, []string{`JIRABRIDGE_OPS_ALERT_TO="nobody" is not a plain mail address`}},
		{"short token", []string{"JIRABRIDGE_STATUS_ACTION_TOKEN", "short"}, []string{"JIRABRIDGE_STATUS_ACTION_TOKEN is shorter than 16 characters"}},
		{"bad listen", []string{"JIRABRIDGE_HTTP_LISTEN", "8080"}, []string{`JIRABRIDGE_HTTP_LISTEN="8080" is not host:port`}},
		{"bad log", []string{"JIRABRIDGE_LOG_LEVEL", "loud", "JIRABRIDGE_LOG_FORMAT", "xml"}, []string{`JIRABRIDGE_LOG_LEVEL="loud"`, `JIRABRIDGE_LOG_FORMAT="xml"`}},
		{"silence vs heartbeat", []string{"JIRABRIDGE_PEER_SILENCE_THRESHOLD", "6m"}, []string{"JIRABRIDGE_PEER_SILENCE_THRESHOLD=6m0s must be at least twice JIRABRIDGE_HEARTBEAT_INTERVAL (5m0s)"}},
		{"workers", []string{"JIRABRIDGE_REPLAY_WORKERS", "0"}, []string{"JIRABRIDGE_REPLAY_WORKERS=0 is out of range"}},
		{"bad bool", []string{"JIRABRIDGE_JIRA_TLS_DANGEROUSLY_SKIP_VERIFY", "maybe"}, []string{`JIRABRIDGE_JIRA_TLS_DANGEROUSLY_SKIP_VERIFY="maybe": not true or false`}},
		{"file transport needs dirs", []string{"JIRABRIDGE_TRANSPORT", "file"}, []string{"JIRABRIDGE_FILEDROP_OUTGOING_DIR is required", "JIRABRIDGE_FILEDROP_INCOMING_DIR is required"}},
		{"file transport same dirs", []string{"JIRABRIDGE_TRANSPORT", "file", "JIRABRIDGE_FILEDROP_OUTGOING_DIR", "/x/", "JIRABRIDGE_FILEDROP_INCOMING_DIR", "/x"}, []string{"are the same directory"}},
		{"file transport with alerts still needs smtp", []string{"JIRABRIDGE_TRANSPORT", "file", "JIRABRIDGE_FILEDROP_OUTGOING_DIR", "/o", "JIRABRIDGE_FILEDROP_INCOMING_DIR", "/i", "JIRABRIDGE_SMTP_HOST", ""},
			[]string{"JIRABRIDGE_SMTP_HOST is required (alert mail to JIRABRIDGE_OPS_ALERT_TO is sent through SMTP)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(getenvFrom(with(validEnv(), tc.kv...)))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load succeeded; want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q; got:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), marker) {
				t.Errorf("error leaks a secret:\n%v", err)
			}
		})
	}
}

func TestValidateJoinsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := Load(getenvFrom(with(validEnv(),
		"JIRABRIDGE_SMTP_TLS_MODE", "plain",
		"JIRABRIDGE_IMAP_PORT", "0x",
		"JIRABRIDGE_LOG_FORMAT", "xml",
		"JIRABRIDGE_JIRA_USER", "")))
	if err == nil {
		t.Fatal("want errors")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 4 {
		t.Errorf("got %d problems, want 4:\n%v", len(lines), err)
	}
}

func TestSecretFileVariant(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(marker+"-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	c, err := Load(getenvFrom(with(validEnv(), "JIRABRIDGE_JIRA_PASSWORD", "", "JIRABRIDGE_JIRA_PASSWORD_FILE", pw)))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := c.Jira.Password.Reveal(); got != marker+"-from-file" {
		t.Errorf("password = %q, want trailing newline trimmed", got)
	}
	if src := settingSource(c, "JIRABRIDGE_JIRA_PASSWORD"); src != SourceFile {
		t.Errorf("source = %q, want file", src)
	}

	cases := []struct {
		name string
		kv   []string
		want string
	}{
		{"both", []string{"JIRABRIDGE_IMAP_PASSWORD_FILE", pw}, "JIRABRIDGE_IMAP_PASSWORD and JIRABRIDGE_IMAP_PASSWORD_FILE are both set; set only one"},
		{"missing", []string{"JIRABRIDGE_SMTP_PASSWORD", "", "JIRABRIDGE_SMTP_PASSWORD_FILE", filepath.Join(dir, "missing")}, "JIRABRIDGE_SMTP_PASSWORD_FILE: read secret: open"},
		{"empty", []string{"JIRABRIDGE_OPS_WEBHOOK_URL", "", "JIRABRIDGE_OPS_WEBHOOK_URL_FILE", empty}, "JIRABRIDGE_OPS_WEBHOOK_URL_FILE: file " + empty + " is empty"},
	}
	for _, tc := range cases {
		_, err := Load(getenvFrom(with(validEnv(), tc.kv...)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

func settingSource(c *Config, name string) string {
	for _, s := range c.Effective() {
		if s.Var == name {
			return s.Source
		}
	}
	return "?"
}

func TestVariablesHaveFileVariants(t *testing.T) {
	t.Parallel()
	names := Variables()
	for _, want := range []string{
		"JIRABRIDGE_DATA_DIR", "JIRABRIDGE_TRANSPORT", "JIRABRIDGE_SYNC_FILE", "JIRABRIDGE_POLL_INTERVAL",
		"JIRABRIDGE_JIRA_BASE_URL", "JIRABRIDGE_JIRA_PASSWORD", "JIRABRIDGE_JIRA_PASSWORD_FILE",
		"JIRABRIDGE_JIRA_TOKEN_FILE", "JIRABRIDGE_JIRA_TLS_DANGEROUSLY_SKIP_VERIFY",
		"JIRABRIDGE_SMTP_TLS_MODE", "JIRABRIDGE_SMTP_MAX_MESSAGE_SIZE", "JIRABRIDGE_SMTP_PEER_ADDRESS",
		"JIRABRIDGE_IMAP_PASSWORD_FILE", "JIRABRIDGE_IMAP_QUARANTINE_FOLDER", "JIRABRIDGE_IMAP_AFTER_STORE",
		"JIRABRIDGE_FILEDROP_OUTGOING_DIR", "JIRABRIDGE_OPS_ALERT_TO", "JIRABRIDGE_OPS_WEBHOOK_URL",
		"JIRABRIDGE_OPS_WEBHOOK_URL_FILE", "JIRABRIDGE_STATUS_ACTION_TOKEN_FILE", "JIRABRIDGE_HTTP_LISTEN",
		"JIRABRIDGE_RETENTION", "JIRABRIDGE_REPLAY_WORKERS", "JIRABRIDGE_BATCH_LINGER",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("Variables() lacks %s; have %v", want, names)
		}
	}
}

// TestLoadMatchesEnvconfigProcess proves that Load fills a Config exactly
// as envconfig.Process would from the process environment. It sets process
// variables, so it cannot run in parallel.
func TestLoadMatchesEnvconfigProcess(t *testing.T) {
	env := with(validEnv(),
		"JIRABRIDGE_SMTP_PORT", "2525",
		"JIRABRIDGE_IMAP_PORT", "1143",
		"JIRABRIDGE_POLL_INTERVAL", "7s",
		"JIRABRIDGE_OPS_ALERT_TO", "a@example.org,b@example.org",
		"JIRABRIDGE_JIRA_TLS_DANGEROUSLY_SKIP_VERIFY", "true",
		"JIRABRIDGE_BATCH_MAX_BYTES", "1MiB",
	)
	for k, v := range env {
		t.Setenv(k, v)
	}
	var want Config
	if err := envconfig.Process(Prefix, &want); err != nil {
		t.Fatalf("envconfig.Process: %v", err)
	}
	got, err := Load(getenvFrom(env))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	got.set = nil
	// Secrets hold pointers; compare what they reveal, then blank them.
	for _, p := range [][2]*Secret{
		{&got.Jira.Password, &want.Jira.Password}, {&got.SMTP.Password, &want.SMTP.Password},
		{&got.IMAP.Password, &want.IMAP.Password}, {&got.Ops.WebhookURL, &want.Ops.WebhookURL},
		{&got.StatusActionToken, &want.StatusActionToken}, {&got.Jira.Token, &want.Jira.Token},
	} {
		if !p[0].Equal(*p[1]) {
			t.Errorf("secret differs")
		}
		*p[0], *p[1] = Secret{}, Secret{}
	}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("Load and envconfig.Process differ:\n got %#v\nwant %#v", *got, want)
	}
}

func TestByteSize(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want ByteSize
		str  string
	}{
		{"10MB", 10_000_000, "10MB"}, {"512KiB", 512 << 10, "512KiB"}, {"1048576", 1 << 20, "1MiB"},
		{"3 gb", 3_000_000_000, "3GB"}, {"100", 100, "100"}, {"1k", 1000, "1KB"},
	}
	for _, tc := range cases {
		var b ByteSize
		if err := b.UnmarshalText([]byte(tc.in)); err != nil || b != tc.want || b.String() != tc.str {
			t.Errorf("%q: got %d %q %v, want %d %q", tc.in, b, b.String(), err, tc.want, tc.str)
		}
	}
	for _, bad := range []string{"", "-1", "MB", "1.5MB", "99999999999GiB"} {
		var b ByteSize
		if err := b.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("%q: want error, got %d", bad, b)
		}
	}
}

type holder struct {
	hidden Secret // unexported: fmt prints it by reflection, not through its methods
	Shown  Secret
}

func TestNoSecretLeaks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "tok")
	if err := os.WriteFile(tokFile, []byte(marker+"-file-token-long\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(getenvFrom(with(validEnv(), "JIRABRIDGE_STATUS_ACTION_TOKEN", "", "JIRABRIDGE_STATUS_ACTION_TOKEN_FILE", tokFile)))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !strings.Contains(c.StatusActionToken.Reveal(), marker) {
		t.Fatal("the test needs the secrets set")
	}
	var outputs = map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outputs["fmt "+verb] = fmt.Sprintf(verb, c)
		outputs["fmt value "+verb] = fmt.Sprintf(verb, *c)
		outputs["fmt secret "+verb] = fmt.Sprintf(verb, c.Jira.Password)
		outputs["fmt holder "+verb] = fmt.Sprintf(verb, holder{hidden: c.Jira.Password, Shown: c.SMTP.Password})
	}
	outputs["fmt Sprint"] = fmt.Sprint(c, c.Jira, c.Ops, c.IMAP.Password)
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs["json"] = string(js)
	txt, _ := c.SMTP.Password.MarshalText()
	outputs["text"] = string(txt)
	for name, h := range map[string]func(*bytes.Buffer) slog.Handler{
		"slog text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"slog json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var b bytes.Buffer
		l := slog.New(h(&b))
		l.Info("config", "config", c, "value", *c, "jira", c.Jira, "password", c.Jira.Password, "group", slog.Group("g", "tok", c.StatusActionToken))
		outputs[name] = b.String()
	}
	var p bytes.Buffer
	if err := c.Print(&p); err != nil {
		t.Fatal(err)
	}
	outputs["Print"] = p.String()
	outputs["Effective"] = fmt.Sprint(c.Effective())
	for name, out := range outputs {
		if strings.Contains(out, marker) {
			t.Errorf("%s leaks a secret:\n%s", name, out)
		}
	}
	if !strings.Contains(outputs["Print"], "JIRABRIDGE_JIRA_PASSWORD  ") || !strings.Contains(outputs["Print"], Redacted) {
		t.Errorf("Print does not show the redacted password:\n%s", outputs["Print"])
	}
	if !strings.Contains(outputs["json"], `"Password":"\u003csecret\u003e"`) {
		t.Errorf("json: %s", outputs["json"])
	}
}

func TestPrintShowsSources(t *testing.T) {
	t.Parallel()
	c, err := Load(getenvFrom(validEnv()))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := c.Print(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"JIRABRIDGE_DATA_DIR", "./data", "(default)",
		"JIRABRIDGE_SMTP_HOST", "smtp.example.org", "(env)",
		"JIRABRIDGE_JIRA_TOKEN ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Print lacks %q:\n%s", want, out)
		}
	}
	if got, want := len(strings.Split(strings.TrimSpace(out), "\n")), len(c.Effective()); got != want {
		t.Errorf("Print has %d lines, want %d", got, want)
	}
}

func TestDefaultsThenValidate(t *testing.T) {
	t.Parallel()
	c := Defaults()
	if c.PollInterval != 5*time.Second || c.SMTP.Port != 587 || c.IMAP.Mailbox != "INBOX" {
		t.Fatalf("defaults: %+v", c)
	}
	c.Jira.BaseURL = "http://127.0.0.1:1"
	c.Jira.User = "sync"
	c.Jira.Password = NewSecret("pw")
	c.Transport = TransportFile
	c.FileDrop.OutgoingDir, c.FileDrop.IncomingDir = "out", "in"
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings: %v", w)
	}
	c.Jira.DangerouslySkipTLSVerify = true
	c.Jira.BaseURL = "http://jira.internal"
	if w := c.Warnings(); len(w) != 2 {
		t.Errorf("want 2 warnings, got %v", w)
	}
}

func TestSecret(t *testing.T) {
	t.Parallel()
	var zero Secret
	if zero.IsSet() || zero.Reveal() != "" || NewSecret("").IsSet() {
		t.Error("zero secret is set")
	}
	s := NewSecret("x")
	if !s.IsSet() || s.Reveal() != "x" || !s.Equal(NewSecret("x")) || s.Equal(NewSecret("y")) {
		t.Error("secret basics")
	}
	var d Secret
	if err := d.Decode("v"); err != nil || d.Reveal() != "v" {
		t.Error("Decode")
	}
}

func TestUnknownVars(t *testing.T) {
	t.Parallel()
	got := UnknownVars([]string{"JIRABRIDGE_SMTP_HOST=x", "JIRABRIDGE_SMTP_HOSTNAME=y", "HOME=/root", "JIRABRIDGE_JIRA_PASSWORD_FILE=/p", "JIRABRIDGE_POLLINTERVAL=1s"})
	want := []string{"JIRABRIDGE_SMTP_HOSTNAME", "JIRABRIDGE_POLLINTERVAL"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("UnknownVars = %v, want %v", got, want)
	}
}
