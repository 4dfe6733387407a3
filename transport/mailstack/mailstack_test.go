package mailstack

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodEnv = `# written by scripts/mailstack.sh
MAILSTACK_DIR=/tmp/x
MAILSTACK_SCRIPT=/repo/scripts/mailstack.sh
MAILSTACK_HOST=127.0.0.1
MAILSTACK_DOMAIN=jirabridge.test
MAILSTACK_SMTP_PORT=2525
MAILSTACK_SUBMISSION_PORT=2587
MAILSTACK_SMTPS_PORT=2465
MAILSTACK_IMAP_PORT=2143
MAILSTACK_IMAPS_PORT=2993
MAILSTACK_CA_FILE=/tmp/x/tls/ca.crt
MAILSTACK_USERS="bridge-a bridge-b"
MAILSTACK_PASS_BRIDGE_A=pa
MAILSTACK_PASS_BRIDGE_B=pb
`

func TestLoad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     string
		wantErr string
	}{
		{"good", goodEnv, ""},
		{"bad port", strings.Replace(goodEnv, "=2143", "=x", 1), "MAILSTACK_IMAP_PORT"},
		{"missing password", strings.Replace(goodEnv, "MAILSTACK_PASS_BRIDGE_B=pb\n", "", 1), "MAILSTACK_PASS_BRIDGE_B"},
		{"not key value", goodEnv + "junk\n", "not KEY=VALUE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "env")
			if err := os.WriteFile(path, []byte(tt.env), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Load(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load error = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.IMAPSPort != 2993 || s.SMTPSPort != 2465 || s.Password("bridge-b") != "pb" || s.CAFile != "/tmp/x/tls/ca.crt" {
				t.Errorf("Load = %+v, want the file's values", s)
			}
			if got, want := s.Address("bridge-b", "t1"), "bridge-b+t1@jirabridge.test"; got != want {
				t.Errorf("Address = %q, want %q", got, want)
			}
		})
	}
}
