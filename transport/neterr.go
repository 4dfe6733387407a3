package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"syscall"
)

// IsTLSError reports whether err is a failed TLS handshake or an untrusted
// certificate. Both mail transports classify it as permanent: retrying
// will not make the server's certificate trusted; the operator has to set
// the CA file or fix the TLS mode for the port.
func IsTLSError(err error) bool {
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verification     *tls.CertificateVerificationError
		record           tls.RecordHeaderError
		alert            tls.AlertError
	)
	return errors.As(err, &unknownAuthority) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verification) || errors.As(err, &record) || errors.As(err, &alert)
}

// IsConnectionLost reports whether err says the connection to a mail server
// could not be made or went away: end of stream, reset, refused, broken
// pipe, closed, a deadline, or any other net.Error (DNS failures and
// timeouts among them). Both mail transports treat it as temporary: a new
// connection may well succeed. Check IsTLSError first; some TLS failures
// are net.Errors too.
func IsConnectionLost(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne)
}
