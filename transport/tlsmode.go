package transport

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLS modes of the mail transports; smtpsend and imappoll name them with
// their own default ports.
const (
	TLSImplicit = "tls"      // TLS from the first byte
	TLSStartTLS = "starttls" // plain connect, STARTTLS required
	TLSPlain    = "plain"    // no TLS; only to a loopback address
)

// CheckTLSMode returns a mail transport's TLS mode for host: mode, or
// def (the transport's default, TLSImplicit or TLSStartTLS) when mode is
// empty. Implicit TLS and STARTTLS may go anywhere; plain text only to a
// loopback host, since it would otherwise send the mailbox password and
// the envelopes' metadata across the network in the clear. proto ("smtp",
// "imap") starts the error, which suggests def first.
func CheckTLSMode(proto, mode, host, def string) (string, error) {
	if mode == "" {
		mode = def
	}
	other := TLSStartTLS
	if def == TLSStartTLS {
		other = TLSImplicit
	}
	switch mode {
	case TLSImplicit, TLSStartTLS:
		return mode, nil
	case TLSPlain:
		if !IsLoopbackHost(host) {
			return mode, fmt.Errorf("%s tls mode %q is only allowed to a loopback address, not %q: use %q or %q", proto, TLSPlain, host, def, other)
		}
		return mode, nil
	default:
		return mode, fmt.Errorf("%s tls mode %q is unknown: use %q, %q or %q (loopback only)", proto, mode, TLSImplicit, TLSStartTLS, TLSPlain)
	}
}

// ClientTLS is the TLS configuration of a mail client to host: TLS 1.2 at
// least, and, when caFile is set, only the certificates it holds (a
// private CA). proto and caVar ("smtp", "JIRABRIDGE_SMTP_CA_FILE") name
// what to fix in the error.
func ClientTLS(proto, host, caFile, caVar string) (*tls.Config, error) {
	conf := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return conf, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read %s CA file (%s): %w", proto, caVar, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s CA file %s (%s) holds no PEM certificate", proto, caFile, caVar)
	}
	conf.RootCAs = pool
	return conf, nil
}
