package transport

import "testing"

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
