package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
)

func TestIsTLSErrorIsConnectionLost(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error { return fmt.Errorf("dial: %w", err) }
	tests := []struct {
		name         string
		err          error
		tlsErr, conn bool
	}{
		{"unknown authority", wrap(x509.UnknownAuthorityError{}), true, false},
		{"hostname", wrap(x509.HostnameError{Host: "mail.example.org", Certificate: &x509.Certificate{}}), true, false},
		{"invalid certificate", wrap(x509.CertificateInvalidError{Reason: x509.Expired, Cert: &x509.Certificate{}}), true, false},
		{"verification", wrap(&tls.CertificateVerificationError{Err: errors.New("bad")}), true, false},
		{"record header (plain server on a TLS port)", wrap(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), true, false},
		{"alert", wrap(tls.AlertError(40)), true, false},
		{"eof", wrap(io.EOF), false, true},
		{"unexpected eof", wrap(io.ErrUnexpectedEOF), false, true},
		{"closed", wrap(net.ErrClosed), false, true},
		{"reset", wrap(&net.OpError{Op: "read", Err: syscall.ECONNRESET}), false, true},
		{"refused", wrap(syscall.ECONNREFUSED), false, true},
		{"broken pipe", wrap(syscall.EPIPE), false, true},
		{"deadline", wrap(context.DeadlineExceeded), false, true},
		{"dns", wrap(&net.DNSError{Err: "no such host", Name: "mail.example.org", IsNotFound: true}), false, true},
		{"canceled", wrap(context.Canceled), false, false},
		{"other", errors.New("535 authentication failed"), false, false},
	}
	for _, tc := range tests {
		if got := IsTLSError(tc.err); got != tc.tlsErr {
			t.Errorf("%s: IsTLSError = %v, want %v", tc.name, got, tc.tlsErr)
		}
		if got := IsConnectionLost(tc.err); got != tc.conn {
			t.Errorf("%s: IsConnectionLost = %v, want %v", tc.name, got, tc.conn)
		}
	}
}
