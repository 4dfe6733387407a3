// Package wire is the message format two bridges exchange: changes, the
// envelope that carries a batch of them, its deterministic encoding, and the
// sealing (compress, encrypt to the peer with age, sign with Ed25519) and
// opening (verify, then decrypt) of envelopes. Nothing here does I/O: the
// store, the transports and the sync engine move and keep the bytes.
//
// Opening follows the design's rule "verify before you trust, and before
// you decrypt": the clear header is checked against the keyring and the
// signature is verified over the whole frame before any byte of the
// encrypted body is processed, so a forged or foreign message costs one
// signature check and can never reach the decoders.
package wire

import (
	"errors"
	"fmt"
	"strings"
)

// Errors Open, PeekHeader and the body decoders return. Each is wrapped with
// context (which sync, which sender, what was being checked) but never with
// payload data, so an error can be logged, stored with the quarantined
// message and shown to an operator. Test with errors.Is; label with Reason.
var (
	// ErrNotJirabridge: the bytes are not a well-formed jirabridge envelope
	// frame (wrong magic, truncated, malformed or oversized header). Mail
	// that is not ours at all ends here.
	ErrNotJirabridge = errors.New("not a jirabridge envelope")
	// ErrUnsupportedVersion: a jirabridge envelope or change of a protocol
	// version this build does not speak; upgrading the bridge fixes it.
	ErrUnsupportedVersion = errors.New("unsupported protocol version")
	// ErrUnknownSync: the envelope names a sync this bridge does not take
	// part in (foreign, or a sync that was deleted).
	ErrUnknownSync = errors.New("unknown sync")
	// ErrUnknownSender: the sync is known but the sending node has no
	// signing key on record for it.
	ErrUnknownSender = errors.New("unknown sender key")
	// ErrBadSignature: the signature does not verify with the sender's key;
	// the envelope is forged or was altered in transit.
	ErrBadSignature = errors.New("bad signature")
	// ErrDecrypt: the signature is good but the body cannot be decrypted with
	// our identity for the sync (the peer used a stale key, or the
	// ciphertext is damaged in a way the sender signed).
	ErrDecrypt = errors.New("cannot decrypt body")
	// ErrCorruptBody: the body decrypted but does not decompress or decode
	// as its kind requires. The peer signed it, so this is a peer bug.
	ErrCorruptBody = errors.New("corrupt body")
	// ErrKeyring: the keyring could not answer (for example the store was
	// busy). It says nothing about the envelope: the caller retries later
	// instead of quarantining. The keyring's own error is wrapped too.
	ErrKeyring = errors.New("keyring lookup failed")
)

var reasons = []struct {
	err    error
	reason string
}{
	{ErrNotJirabridge, "not_jirabridge"},
	{ErrUnsupportedVersion, "unsupported_version"},
	{ErrUnknownSync, "unknown_sync"},
	{ErrUnknownSender, "unknown_sender"},
	{ErrBadSignature, "bad_signature"},
	{ErrDecrypt, "decrypt_failed"},
	{ErrCorruptBody, "corrupt_body"},
	{ErrKeyring, "keyring_error"},
}

// Reason returns a snake_case label for err, for metrics, quarantine records
// and alerts: "not_jirabridge", "unsupported_version", "unknown_sync",
// "unknown_sender", "bad_signature", "decrypt_failed", "corrupt_body",
// "keyring_error"; "" for nil and "invalid_input" for anything else (Seal
// and the encoders refusing bad arguments).
func Reason(err error) string {
	if err == nil {
		return ""
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "invalid_input"
}

// ids formats the routing context of an error. The ids come from an
// unverified header, so they are quoted and cut short: a hostile sender must
// not be able to fill logs through them.
func ids(sync, sender string) string {
	return fmt.Sprintf("sync %q sender %q", clip(sync), clip(sender))
}

func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "..."
}
