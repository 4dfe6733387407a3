package link

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"

	"filippo.io/age"

	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// Keyring is a wire.Keyring backed by the store's sync and keys rows, for
// one sync: it knows our age identity for that sync and the signing key of
// its peer node, and nothing else, so an envelope of any other sync or
// signed by any other node fails to open (unknown_sync, unknown_sender).
//
// It keeps what it read until Invalidate: the link opens every envelope
// twice (on arrival and on release), and reading and parsing keys each time
// cost more than the crypto. The link invalidates and retries once
// whenever an envelope fails to open for a key reason, so a re-keying in
// the handshake takes effect with the first envelope that needs it.
type Keyring struct {
	st   *store.Store
	sync string

	mu   sync.Mutex
	snap *keySnap
}

// keySnap is one reading of the keys of a sync.
type keySnap struct {
	id      age.Identity // nil: we have no identity for the sync
	peer    string
	peerKey ed25519.PublicKey // nil: none on record
}

// NewKeyring returns the keyring of one sync.
func NewKeyring(st *store.Store, syncID string) *Keyring {
	return &Keyring{st: st, sync: syncID}
}

// Invalidate drops what the keyring read, so the next lookup reads the
// store again.
func (k *Keyring) Invalidate() {
	k.mu.Lock()
	k.snap = nil
	k.mu.Unlock()
}

// get returns the cached reading, or reads it (through tx when given).
func (k *Keyring) get(tx *store.Tx) (keySnap, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.snap != nil {
		return *k.snap, nil
	}
	var snap keySnap
	var err error
	if tx != nil {
		snap, err = loadSnap(tx, k.sync)
	} else {
		err = k.st.View(noCtx(), func(tx *store.Tx) error {
			snap, err = loadSnap(tx, k.sync)
			return err
		})
	}
	if err != nil {
		return keySnap{}, err
	}
	k.snap = &snap
	return snap, nil
}

func loadSnap(tx *store.Tx, sync string) (keySnap, error) {
	var snap keySnap
	s, err := tx.SyncGet(sync)
	if errors.Is(err, store.ErrNotFound) {
		return snap, nil
	}
	if err != nil {
		return snap, err
	}
	keys, err := tx.KeysGet(sync)
	if errors.Is(err, store.ErrNotFound) {
		return snap, nil
	}
	if err != nil {
		return snap, err
	}
	snap.peer = s.PeerNode
	if len(keys.PeerSigningKey) == ed25519.PublicKeySize {
		snap.peerKey = ed25519.PublicKey(keys.PeerSigningKey)
	}
	if keys.AgeIdentity != "" {
		id, err := age.ParseX25519Identity(strings.TrimSpace(keys.AgeIdentity))
		if err != nil {
			// A broken stored key is not a property of the envelope: say
			// so as a keyring failure, without quoting the key.
			return snap, errors.New("stored age identity of the sync does not parse")
		}
		snap.id = id
	}
	return snap, nil
}

func (k *Keyring) identity(tx *store.Tx, sync string) (age.Identity, bool, error) {
	if sync != k.sync {
		return nil, false, nil
	}
	snap, err := k.get(tx)
	if err != nil {
		return nil, false, err
	}
	return snap.id, snap.id != nil, nil
}

func (k *Keyring) senderKey(tx *store.Tx, sync, sender string) (ed25519.PublicKey, bool, error) {
	if sync != k.sync {
		return nil, false, nil
	}
	snap, err := k.get(tx)
	if err != nil {
		return nil, false, err
	}
	if snap.peer == "" || sender != snap.peer || snap.peerKey == nil {
		return nil, false, nil
	}
	return snap.peerKey, true, nil
}

// Identity implements wire.Keyring.
func (k *Keyring) Identity(sync string) (age.Identity, bool, error) { return k.identity(nil, sync) }

// SenderKey implements wire.Keyring.
func (k *Keyring) SenderKey(sync, sender string) (ed25519.PublicKey, bool, error) {
	return k.senderKey(nil, sync, sender)
}

// txKeyring reads through a transaction when it must read at all (release
// re-opens stored envelopes while it holds the write lock).
type txKeyring struct {
	k  *Keyring
	tx *store.Tx
}

func (t txKeyring) Identity(sync string) (age.Identity, bool, error) { return t.k.identity(t.tx, sync) }

func (t txKeyring) SenderKey(sync, sender string) (ed25519.PublicKey, bool, error) {
	return t.k.senderKey(t.tx, sync, sender)
}

// open opens an envelope with kr, and when it fails for a reason a newer
// key could fix, drops the cached keys and tries once more.
func (k *Keyring) open(b []byte, kr wire.Keyring) (wire.Envelope, error) {
	env, err := wire.Open(b, kr)
	if errors.Is(err, wire.ErrUnknownSender) || errors.Is(err, wire.ErrBadSignature) || errors.Is(err, wire.ErrDecrypt) {
		k.Invalidate()
		env, err = wire.Open(b, kr)
	}
	return env, err
}

// sealKeys is what sealing needs: who we are, our signing key and the
// peer's age recipient.
type sealKeys struct {
	self, peer string
	signer     ed25519.PrivateKey
	recipient  age.Recipient
}

func loadSealKeys(tx *store.Tx, sync string) (sealKeys, error) {
	s, err := tx.SyncGet(sync)
	if err != nil {
		return sealKeys{}, fmt.Errorf("load sync %s for sealing: %w", sync, err)
	}
	keys, err := tx.KeysGet(sync)
	if err != nil {
		return sealKeys{}, fmt.Errorf("load keys of sync %s for sealing: %w", sync, err)
	}
	var signer ed25519.PrivateKey
	switch len(keys.SigningKey) {
	case ed25519.PrivateKeySize:
		signer = ed25519.PrivateKey(keys.SigningKey)
	case ed25519.SeedSize:
		signer = ed25519.NewKeyFromSeed(keys.SigningKey)
	default:
		return sealKeys{}, fmt.Errorf("keys of sync %s: signing key has %d bytes, want a %d-byte Ed25519 key or %d-byte seed",
			sync, len(keys.SigningKey), ed25519.PrivateKeySize, ed25519.SeedSize)
	}
	if keys.PeerAgeRecipient == "" || s.PeerNode == "" {
		return sealKeys{}, fmt.Errorf("sync %s has no peer keys yet: finish the handshake", sync)
	}
	rcpt, err := age.ParseX25519Recipient(strings.TrimSpace(keys.PeerAgeRecipient))
	if err != nil {
		return sealKeys{}, fmt.Errorf("keys of sync %s: peer age recipient does not parse: %w", sync, err)
	}
	return sealKeys{self: s.SelfNode, peer: s.PeerNode, signer: signer, recipient: rcpt}, nil
}

var _ wire.Keyring = (*Keyring)(nil)
var _ wire.Keyring = txKeyring{}
