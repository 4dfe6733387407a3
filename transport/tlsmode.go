package transport

import "fmt"

// TLS modes of the mail transports; smtpsend and imappoll name them with
// their own default ports.
const (
	TLSImplicit = "tls"      // TLS from the first byte
	TLSStartTLS = "starttls" // plain connect, STARTTLS required
	TLSPlain    = "plain"    // no TLS; only to a loopback address
)

// CheckTLSMode checks a mail transport's TLS mode for host. Implicit TLS
// and STARTTLS may go anywhere; plain text only to a loopback host, since
// it would otherwise send the mailbox password and the envelopes'
// metadata across the network in the clear. proto ("smtp", "imap") starts
// the error, and preferred (the transport's default, TLSImplicit or
// TLSStartTLS) is the first mode it suggests instead.
func CheckTLSMode(proto, mode, host, preferred string) error {
	other := TLSStartTLS
	if preferred == TLSStartTLS {
		other = TLSImplicit
	}
	switch mode {
	case TLSImplicit, TLSStartTLS:
		return nil
	case TLSPlain:
		if !IsLoopbackHost(host) {
			return fmt.Errorf("%s tls mode %q is only allowed to a loopback address, not %q: use %q or %q", proto, TLSPlain, host, preferred, other)
		}
		return nil
	default:
		return fmt.Errorf("%s tls mode %q is unknown: use %q, %q or %q (loopback only)", proto, mode, TLSImplicit, TLSStartTLS, TLSPlain)
	}
}
