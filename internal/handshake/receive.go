package handshake

import (
	"crypto/ed25519"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"

	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// Events Receive reports.
const (
	EventAccepted  = "accepted"   // master: a slave joined; ping queued
	EventPing      = "ping"       // slave: the master accepted us; pong queued, STOPPED
	EventPong      = "pong"       // master: the slave answered; STOPPED
	EventConfig    = "config"     // slave: a configuration arrived
	EventConfigAck = "config_ack" // master: the slave adopted a configuration
	EventDuplicate = "duplicate"  // a sequence number already held: dropped
	EventRefused   = "refused"    // quarantined with Reason
)

// Refusal reasons (snake_case labels for quarantine records and metrics).
const (
	ReasonUnknownSync     = "handshake_unknown_sync"
	ReasonForged          = "handshake_forged"
	ReasonSecondJoin      = "handshake_second_join"
	ReasonNoPending       = "handshake_not_pending"
	ReasonBadJoin         = "handshake_bad_join"
	ReasonOutOfOrder      = "lifecycle_out_of_order"
	ReasonBadBody         = "lifecycle_bad_body"
	ReasonUnknownSender   = "lifecycle_unknown_sender"
	ReasonOpenFailedLabel = "lifecycle_" // + wire.Reason
)

// Result says what Receive did with one lifecycle envelope.
type Result struct {
	Sync   string
	Event  string
	State  store.SyncState // the sync's state afterwards
	Reason string          // for EventRefused: why, a snake_case label
	Detail string          // for EventRefused: what a person reads
	// Missing lists the aliases the slave has not mapped (EventConfig with
	// ReceiveOptions.Local set).
	Missing []string
}

// ReceiveOptions is what Receive needs beyond the message.
type ReceiveOptions struct {
	// Ref names where the message came from (file name, IMAP UID), for
	// the quarantine record of a refused message.
	Ref string
	// Local is this bridge's own aliases (AliasesOf its sync definition),
	// when known: a slave receiving a configuration then adopts it at once
	// if it maps every alias. Nil leaves the slave in UPDATE REQUIRED until
	// Reconcile is called.
	Local *Config
}

// IsLifecycle reports, from the untrusted clear header, whether sealed is
// an envelope Receive handles (handshake or config) rather than the link.
func IsLifecycle(sealed []byte) bool {
	h, err := wire.PeekHeader(sealed)
	return err == nil && (h.Kind == wire.KindHandshake || h.Kind == wire.KindConfig)
}

// Receive handles one incoming lifecycle envelope (handshake or config) in
// the caller's transaction: it verifies it, records it in the inbox under
// its sequence number (so the link acks it and never asks for it again),
// changes the sync's state and queues the answer in the outbox.
//
// A message that must not be trusted (forged, for another sync, a second
// join, out of order) is recorded in quarantine and reported as
// EventRefused with a nil error: the caller commits and acks the transport
// with that disposition. An error means the store failed; the caller rolls
// back and tries again later. ErrNotLifecycle means the envelope is the
// link's.
//
// Lifecycle messages are handled when they arrive, not in sequence order
// behind changes envelopes with lower numbers: each is self-contained (a
// join, a ping, a whole configuration with its version, an ack naming the
// version), and an older configuration arriving after a newer one is
// recognised by its version and ignored. Their numbers still enter the
// inbox, so the link's acks and gap detection count them.
func Receive(tx *store.Tx, sealed []byte, o ReceiveOptions) (Result, error) {
	h, err := wire.PeekHeader(sealed)
	if err != nil || (h.Kind != wire.KindHandshake && h.Kind != wire.KindConfig) {
		return Result{}, ErrNotLifecycle
	}
	r := recv{tx: tx, sealed: sealed, h: h, o: o}
	return r.run()
}

type recv struct {
	tx     *store.Tx
	sealed []byte
	h      wire.Header // untrusted until opened
	o      ReceiveOptions
	s      store.Sync
}

func (r *recv) refuse(reason, detail string) (Result, error) {
	_, err := r.tx.QuarantineAdd(store.Quarantined{
		SyncID: r.h.Sync, TransportRef: r.o.Ref, Reason: reason + ": " + detail, Raw: r.sealed,
	})
	if err != nil {
		return Result{}, fmt.Errorf("quarantine refused %s message: %w", r.h.Kind, err)
	}
	return Result{Sync: r.h.Sync, Event: EventRefused, State: r.s.State, Reason: reason, Detail: detail}, nil
}

func (r *recv) run() (Result, error) {
	s, err := r.tx.SyncGet(r.h.Sync)
	if errors.Is(err, store.ErrNotFound) {
		return r.refuse(ReasonUnknownSync, fmt.Sprintf("a %s message for sync %q, which this bridge does not have (a handshake file of another sync?)", r.h.Kind, r.h.Sync))
	}
	if err != nil {
		return Result{}, fmt.Errorf("read sync %s: %w", r.h.Sync, err)
	}
	r.s = s
	if s.PeerNode != "" && r.h.Sender == s.PeerNode {
		dup, err := r.held()
		if err != nil {
			return Result{}, err
		}
		if dup {
			return Result{Sync: s.ID, Event: EventDuplicate, State: s.State}, nil
		}
	}
	if s.Role == store.RoleMaster && s.PeerNode == "" {
		if r.h.Kind != wire.KindHandshake {
			return r.refuse(ReasonOutOfOrder, "a config message before any slave joined")
		}
		return r.acceptJoin()
	}
	if r.h.Sender != s.PeerNode {
		if s.Role == store.RoleMaster && r.h.Kind == wire.KindHandshake {
			return r.refuse(ReasonSecondJoin, fmt.Sprintf("node %q tried to join, but sync %q already has its slave (node %q): a handshake file is good for one join only", r.h.Sender, s.Name, s.PeerNode))
		}
		return r.refuse(ReasonUnknownSender, fmt.Sprintf("sender %q is not the peer of sync %q", r.h.Sender, s.Name))
	}
	env, err := wire.Open(r.sealed, txKeyring{tx: r.tx, s: s})
	if errors.Is(err, wire.ErrKeyring) {
		return Result{}, fmt.Errorf("open %s message: %w", r.h.Kind, err)
	}
	if err != nil {
		return r.refuse(ReasonOpenFailedLabel+wire.Reason(err), err.Error())
	}
	if err := r.record(env.Header); err != nil {
		return Result{}, err
	}
	switch {
	case env.Kind == wire.KindHandshake:
		return r.ping(env)
	case s.Role == store.RoleSlave:
		return r.config(env)
	default:
		return r.configAck(env)
	}
}

// held reports whether the sequence number is already in the inbox.
func (r *recv) held() (bool, error) {
	cur, err := r.tx.InboxCursor(r.s.ID, r.h.Sender)
	if err != nil {
		return false, fmt.Errorf("read inbox cursor: %w", err)
	}
	if r.h.Seq <= cur.Contiguous {
		return true, nil
	}
	_, err = r.tx.InboxGet(r.s.ID, r.h.Sender, r.h.Seq)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return false, fmt.Errorf("read inbox: %w", err)
}

// record stores the opened envelope in the inbox as already released, and
// notes that the peer was heard from.
func (r *recv) record(h wire.Header) error {
	if _, err := r.tx.InboxInsert(store.InboxEntry{
		SyncID: h.Sync, Sender: h.Sender, Seq: h.Seq, Kind: h.Kind, Sealed: r.sealed,
	}); err != nil {
		return fmt.Errorf("store %s message in the inbox: %w", h.Kind, err)
	}
	if err := r.tx.InboxMarkReleased(h.Sync, h.Sender, h.Seq); err != nil {
		return fmt.Errorf("mark %s message processed: %w", h.Kind, err)
	}
	if h.Ack > 0 {
		if _, err := r.tx.OutboxAck(h.Sync, h.Ack); err != nil {
			return fmt.Errorf("record ack of %s message: %w", h.Kind, err)
		}
	}
	if err := r.tx.LinkHeard(h.Sync); err != nil {
		return fmt.Errorf("record peer heard: %w", err)
	}
	return nil
}

func (r *recv) acceptJoin() (Result, error) {
	keys, err := r.tx.KeysGet(r.s.ID)
	if err != nil {
		return Result{}, fmt.Errorf("read keys of sync %s: %w", r.s.ID, err)
	}
	if len(keys.HandshakeSecretHash) == 0 {
		return r.refuse(ReasonNoPending, fmt.Sprintf("sync %q expects no handshake (its handshake secret was used or withdrawn)", r.s.Name))
	}
	id, err := age.ParseX25519Identity(strings.TrimSpace(keys.AgeIdentity))
	if err != nil {
		return Result{}, errors.New("stored age identity of the sync does not parse")
	}
	k := keys.HandshakeSecretHash
	env, err := wire.Open(r.sealed, joinKeyring{sync: r.s.ID, id: id, key: handshakeSigner(k).Public().(ed25519.PublicKey)})
	if errors.Is(err, wire.ErrBadSignature) {
		return r.refuse(ReasonForged, fmt.Sprintf("a handshake for sync %q that was not made with its handshake file", r.s.Name))
	}
	if err != nil {
		return r.refuse(ReasonOpenFailedLabel+wire.Reason(err), err.Error())
	}
	var b joinBody
	if err := json.Unmarshal(env.Body, &b); err != nil || b.Type != "join" {
		return r.refuse(ReasonBadJoin, "the handshake body is not a join")
	}
	if b.Version != ProtocolVersion {
		return r.refuse(ReasonBadJoin, fmt.Sprintf("join of protocol version %d, this bridge speaks %d: use the same jirabridge version on both sides", b.Version, ProtocolVersion))
	}
	if b.Sync != r.s.ID || b.MasterNode != r.s.SelfNode || b.SlaveNode != env.Sender || b.SlaveNode == "" {
		return r.refuse(ReasonBadJoin, "the join names another sync, master or sender than its envelope")
	}
	proof := joinProof(b.Sync, b.MasterNode, b.SlaveNode, b.SlaveKeys)
	if !hmac.Equal(b.MAC, joinMAC(k, proof)) {
		return r.refuse(ReasonForged, "the join's proof of the handshake secret does not match")
	}
	pub, err := wire.ParsePublicKeys(b.SlaveKeys)
	if err != nil {
		return r.refuse(ReasonBadJoin, "the slave's public keys do not parse")
	}
	if !ed25519.Verify(pub.Signing, proof, b.PoP) {
		return r.refuse(ReasonBadJoin, "the slave does not hold the signing key it sent")
	}
	// Accept: the slave's keys become the peer's, the secret is spent.
	keys.PeerSigningKey = pub.Signing
	keys.PeerAgeRecipient = pub.Recipient.String()
	keys.HandshakeSecretHash = nil
	if err := r.tx.KeysPut(keys); err != nil {
		return Result{}, fmt.Errorf("store the slave's keys: %w", err)
	}
	if err := r.tx.SyncSetPeer(r.s.ID, b.SlaveNode); err != nil {
		return Result{}, fmt.Errorf("record the slave: %w", err)
	}
	if err := r.record(env.Header); err != nil {
		return Result{}, err
	}
	if err := r.tx.SyncSetState(r.s.ID, store.StateHandshake, "waiting for the slave's answer to our ping"); err != nil {
		return Result{}, fmt.Errorf("set state: %w", err)
	}
	if err := queue(r.tx, r.s.ID, wire.KindHandshake, pingBody{Type: "ping", Version: ProtocolVersion}); err != nil {
		return Result{}, err
	}
	return Result{Sync: r.s.ID, Event: EventAccepted, State: store.StateHandshake}, nil
}

func (r *recv) ping(env wire.Envelope) (Result, error) {
	var b pingBody
	if err := json.Unmarshal(env.Body, &b); err != nil {
		return r.refuse(ReasonBadBody, "the handshake body does not decode")
	}
	switch {
	case b.Type == "ping" && r.s.Role == store.RoleSlave:
		if r.s.State == store.StateHandshake {
			if err := r.tx.SyncSetState(r.s.ID, store.StateStopped, ""); err != nil {
				return Result{}, fmt.Errorf("set state: %w", err)
			}
			r.s.State = store.StateStopped
		}
		if err := queue(r.tx, r.s.ID, wire.KindHandshake, pingBody{Type: "pong", Version: ProtocolVersion}); err != nil {
			return Result{}, err
		}
		return Result{Sync: r.s.ID, Event: EventPing, State: r.s.State}, nil
	case b.Type == "pong" && r.s.Role == store.RoleMaster:
		if r.s.State == store.StateHandshake {
			if err := r.tx.SyncSetState(r.s.ID, store.StateStopped, ""); err != nil {
				return Result{}, fmt.Errorf("set state: %w", err)
			}
			r.s.State = store.StateStopped
		}
		return Result{Sync: r.s.ID, Event: EventPong, State: r.s.State}, nil
	}
	return r.refuse(ReasonOutOfOrder, fmt.Sprintf("a handshake %q message for the %s", b.Type, r.s.Role))
}

// queue seals a lifecycle message with this node's key to the peer and
// appends it to the outbox, where the link sends it.
func queue(tx *store.Tx, syncID, kind string, body any) error {
	s, err := tx.SyncGet(syncID)
	if err != nil {
		return fmt.Errorf("queue %s message: read sync: %w", kind, err)
	}
	keys, err := tx.KeysGet(syncID)
	if err != nil {
		return fmt.Errorf("queue %s message: read keys: %w", kind, err)
	}
	if s.PeerNode == "" || keys.PeerAgeRecipient == "" {
		return fmt.Errorf("queue %s message: %w: sync %q has no peer yet; wait for the slave's join", kind, ErrState, s.Name)
	}
	var signer ed25519.PrivateKey
	switch len(keys.SigningKey) {
	case ed25519.PrivateKeySize:
		signer = ed25519.PrivateKey(keys.SigningKey)
	case ed25519.SeedSize:
		signer = ed25519.NewKeyFromSeed(keys.SigningKey)
	default:
		return fmt.Errorf("queue %s message: stored signing key has %d bytes", kind, len(keys.SigningKey))
	}
	rcpt, err := age.ParseX25519Recipient(strings.TrimSpace(keys.PeerAgeRecipient))
	if err != nil {
		return fmt.Errorf("queue %s message: stored peer recipient does not parse: %w", kind, err)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("queue %s message: encode: %w", kind, err)
	}
	cur, err := tx.InboxCursor(syncID, s.PeerNode)
	if err != nil {
		return fmt.Errorf("queue %s message: read inbox cursor: %w", kind, err)
	}
	now := tx.Now()
	_, err = tx.OutboxAppendFunc(syncID, kind, func(seq uint64) ([]byte, error) {
		return wire.Seal(wire.Envelope{
			Header: wire.Header{Sync: syncID, Sender: s.SelfNode, Seq: seq, Ack: cur.Contiguous, Kind: kind, Created: now},
			Body:   b,
		}, signer, rcpt)
	})
	if err != nil {
		return fmt.Errorf("queue %s message: %w", kind, err)
	}
	return nil
}

// joinKeyring opens the slave's Handshake envelope: our identity, and the
// key derived from the handshake secret for whatever node the header names
// (the HMAC and the body's checks bind the node id afterwards).
type joinKeyring struct {
	sync string
	id   age.Identity
	key  ed25519.PublicKey
}

func (k joinKeyring) Identity(sync string) (age.Identity, bool, error) {
	return k.id, sync == k.sync, nil
}

func (k joinKeyring) SenderKey(sync, _ string) (ed25519.PublicKey, bool, error) {
	return k.key, sync == k.sync, nil
}

// txKeyring opens envelopes of the sync's peer after the handshake.
type txKeyring struct {
	tx *store.Tx
	s  store.Sync
}

func (k txKeyring) Identity(sync string) (age.Identity, bool, error) {
	if sync != k.s.ID {
		return nil, false, nil
	}
	keys, err := k.tx.KeysGet(sync)
	if err != nil {
		return nil, false, err
	}
	id, err := age.ParseX25519Identity(strings.TrimSpace(keys.AgeIdentity))
	if err != nil {
		return nil, false, errors.New("stored age identity of the sync does not parse")
	}
	return id, true, nil
}

func (k txKeyring) SenderKey(sync, sender string) (ed25519.PublicKey, bool, error) {
	if sync != k.s.ID || sender != k.s.PeerNode {
		return nil, false, nil
	}
	keys, err := k.tx.KeysGet(sync)
	if err != nil {
		return nil, false, err
	}
	if len(keys.PeerSigningKey) != ed25519.PublicKeySize {
		return nil, false, nil
	}
	return ed25519.PublicKey(keys.PeerSigningKey), true, nil
}

// cursor names of the lifecycle's own state in the store.
func cursorName(syncID, what string) string { return "lifecycle/" + syncID + "/" + what }

func getCursor(tx *store.Tx, syncID, what string) (string, error) {
	v, _, err := tx.CursorGet(cursorName(syncID, what))
	if err != nil {
		return "", fmt.Errorf("read %s of sync %s: %w", what, syncID, err)
	}
	return v, nil
}

func setCursor(tx *store.Tx, syncID, what, v string) error {
	if err := tx.CursorSet(cursorName(syncID, what), v); err != nil {
		return fmt.Errorf("store %s of sync %s: %w", what, syncID, err)
	}
	return nil
}
