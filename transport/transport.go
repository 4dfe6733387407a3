// Package transport holds the contracts every way of carrying envelopes
// between two bridges fulfils (SMTP+IMAP, file drop, in-process), and the
// envelope-to-MIME codec they share.
//
// A transport moves opaque sealed bytes. It never decides whether an envelope
// is genuine: the caller opens it with package wire and tells the transport,
// through the AckFunc, whether it was stored or must be quarantined.
package transport

import (
	"context"
	"net"
	"strings"
)

// Kinds of envelope, as carried in the X-Jirabridge-Kind header.
const (
	KindChanges   = "changes"
	KindControl   = "control"
	KindConfig    = "config"
	KindHandshake = "handshake"
)

// Meta is what a mail says about itself in its headers. It is a routing hint
// only; the signed header inside the sealed envelope is the truth.
type Meta struct {
	Sync     string // sync id
	SyncName string // human name, for the subject line
	Sender   string // sender node id
	Seq      uint64 // sequence number in the sender's direction
	Kind     string // one of the Kind constants
}

// Outgoing is one sealed envelope ready to send.
type Outgoing struct {
	Meta
	Sealed []byte // the envelope bytes produced by package wire
}

// Sender sends sealed envelopes to the peer.
//
// Send returns nil once the envelope has been handed over durably (the mail
// server accepted it, the file is renamed into place). Any error is
// classified with package errclass: a retryable error (Temporary, BackOff)
// means the caller sends the same bytes again later; any other error is
// permanent for this envelope: the caller stops retrying it and raises an
// alert. Send must be safe to call again with the same envelope: the receiver
// drops duplicates by sequence number.
type Sender interface {
	Send(ctx context.Context, m Outgoing) error
	Close() error
}

// Disposition is what the caller decided about an incoming envelope.
type Disposition struct {
	// Quarantine is true when the envelope must not be processed (it failed
	// to open, was forged, foreign or corrupt); Reason says why.
	Quarantine bool
	Reason     string
}

// Stored is the disposition of an envelope that is durable in the inbox.
var Stored = Disposition{}

// Quarantined returns the disposition of an envelope that must be kept aside.
func Quarantined(reason string) Disposition { return Disposition{Quarantine: true, Reason: reason} }

// AckFunc finishes the handling of one incoming envelope. The caller calls it
// exactly once, and only after the envelope is durable in the inbox (Stored)
// or it decided to quarantine it. Until then the transport must keep the
// mail or file where it is, so a crash before the ack re-delivers it. An
// error from AckFunc is not fatal to the envelope (it is stored, and a
// re-delivery is a duplicate the inbox drops); the caller logs it.
type AckFunc func(ctx context.Context, d Disposition) error

// Incoming is one envelope read from the transport.
type Incoming struct {
	ID     string // transport-specific identity for logs (IMAP UID, file name)
	Meta   Meta   // from the mail headers; a hint only
	Sealed []byte // the sealed envelope bytes extracted from the mail
	Raw    []byte // the whole mail or file as received, for quarantine and audit
}

// Receiver reads envelopes sent by the peer.
//
// Receive blocks until the next envelope is available, the context is done
// (it returns ctx.Err()), or the transport fails. A retryable error (see
// errclass) means the caller calls Receive again; the transport reconnects
// by itself with back-off. A permanent error (bad credentials, missing
// directory) means the receiver cannot go on until an operator fixes the
// cause. Mail that is not a jirabridge envelope at all is quarantined by the
// transport itself and reported through its options, never returned here
// and never deleted.
type Receiver interface {
	Receive(ctx context.Context) (*Incoming, AckFunc, error)
	Close() error
}

// IsLoopbackHost reports whether host names this machine only: localhost
// (and names below it) or a loopback IP, bracketed or not. Plain-text mail
// is allowed only to such a host; the SMTP sender and the IMAP receiver ask
// the same question, and internal/config answers it the same way.
func IsLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
