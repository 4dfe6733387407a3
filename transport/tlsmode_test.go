package transport

import (
	"crypto/tls"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckTLSMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		proto, mode, host, def string
		wantMode, want         string // want: the error; "" for none
	}{
		{"smtp", TLSStartTLS, "mail.example.org", TLSStartTLS, TLSStartTLS, ""},
		{"smtp", TLSImplicit, "mail.example.org", TLSStartTLS, TLSImplicit, ""},
		{"imap", TLSImplicit, "mail.example.org", TLSImplicit, TLSImplicit, ""},
		{"smtp", TLSPlain, "localhost", TLSStartTLS, TLSPlain, ""},
		{"imap", TLSPlain, "127.0.0.1", TLSImplicit, TLSPlain, ""},
		{"imap", TLSPlain, "[::1]", TLSImplicit, TLSPlain, ""},
		{"smtp", TLSPlain, "mail.example.org", TLSStartTLS, TLSPlain,
			`smtp tls mode "plain" is only allowed to a loopback address, not "mail.example.org": use "starttls" or "tls"`},
		{"imap", TLSPlain, "10.0.0.1", TLSImplicit, TLSPlain,
			`imap tls mode "plain" is only allowed to a loopback address, not "10.0.0.1": use "tls" or "starttls"`},
		{"smtp", "ssl", "localhost", TLSStartTLS, "ssl",
			`smtp tls mode "ssl" is unknown: use "tls", "starttls" or "plain" (loopback only)`},
		{"imap", "", "mail.example.org", TLSImplicit, TLSImplicit, ""},
		{"smtp", "", "mail.example.org", TLSStartTLS, TLSStartTLS, ""},
	}
	for _, tc := range tests {
		mode, err := CheckTLSMode(tc.proto, tc.mode, tc.host, tc.def)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if mode != tc.wantMode || got != tc.want {
			t.Errorf("CheckTLSMode(%q, %q, %q, %q) = %q, %q; want %q, %q", tc.proto, tc.mode, tc.host, tc.def, mode, got, tc.wantMode, tc.want)
		}
	}
}

// ClientTLS trusts only the named CA file when one is set, and says which
// variable to fix when the file is missing or holds no certificate.
func TestClientTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "ca.pem")
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	if err := os.WriteFile(good, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, ca string
		wantErr  string // "" for none
		wantPool bool
	}{
		{"system roots", "", "", false},
		{"private CA", good, "", true},
		{"missing file", filepath.Join(dir, "nope.pem"), "read smtp CA file (JIRABRIDGE_SMTP_CA_FILE)", false},
		{"no certificate", notPEM, "holds no PEM certificate", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conf, err := ClientTLS("smtp", "mail.example", tc.ca, "JIRABRIDGE_SMTP_CA_FILE")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to say %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if conf.ServerName != "mail.example" || conf.MinVersion != tls.VersionTLS12 || (conf.RootCAs != nil) != tc.wantPool {
				t.Errorf("conf = server %q, min %x, own pool %v; want mail.example, TLS 1.2, %v", conf.ServerName, conf.MinVersion, conf.RootCAs != nil, tc.wantPool)
			}
		})
	}
}
