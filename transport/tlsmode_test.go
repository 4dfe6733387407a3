package transport

import "testing"

func TestCheckTLSMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		proto, mode, host, preferred string
		want                         string // the error; "" for none
	}{
		{"smtp", TLSStartTLS, "mail.example.org", TLSStartTLS, ""},
		{"smtp", TLSImplicit, "mail.example.org", TLSStartTLS, ""},
		{"imap", TLSImplicit, "mail.example.org", TLSImplicit, ""},
		{"smtp", TLSPlain, "localhost", TLSStartTLS, ""},
		{"imap", TLSPlain, "127.0.0.1", TLSImplicit, ""},
		{"imap", TLSPlain, "[::1]", TLSImplicit, ""},
		{"smtp", TLSPlain, "mail.example.org", TLSStartTLS,
			`smtp tls mode "plain" is only allowed to a loopback address, not "mail.example.org": use "starttls" or "tls"`},
		{"imap", TLSPlain, "10.0.0.1", TLSImplicit,
			`imap tls mode "plain" is only allowed to a loopback address, not "10.0.0.1": use "tls" or "starttls"`},
		{"smtp", "ssl", "localhost", TLSStartTLS,
			`smtp tls mode "ssl" is unknown: use "tls", "starttls" or "plain" (loopback only)`},
		{"imap", "", "localhost", TLSImplicit,
			`imap tls mode "" is unknown: use "tls", "starttls" or "plain" (loopback only)`},
	}
	for _, tc := range tests {
		err := CheckTLSMode(tc.proto, tc.mode, tc.host, tc.preferred)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("CheckTLSMode(%q, %q, %q, %q) = %q, want %q", tc.proto, tc.mode, tc.host, tc.preferred, got, tc.want)
		}
	}
}
