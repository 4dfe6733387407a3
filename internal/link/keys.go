package link

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"

	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// Keyring is a wire.Keyring backed by the store's sync and keys rows, for
// one sync: it knows our age identity for that sync and the signing key of
// its peer node, and nothing else, so an envelope of any other sync or
// signed by any other node fails to open (unknown_sync, unknown_sender).
// Keys are read at every lookup, so a re-keying in the handshake takes
// effect at once.
type Keyring struct {
	st   *store.Store
	sync string
}

// NewKeyring returns the keyring of one sync.
func NewKeyring(st *store.Store, syncID string) *Keyring { return &Keyring{st: st, sync: syncID} }

// Identity implements wire.Keyring.
func (k *Keyring) Identity(sync string) (id age.Identity, ok bool, err error) {
	if sync != k.sync {
		return nil, false, nil
	}
	err = k.st.View(noCtx(), func(tx *store.Tx) error {
		id, ok, err = txIdentity(tx, sync)
		return err
	})
	return id, ok, err
}

// SenderKey implements wire.Keyring.
func (k *Keyring) SenderKey(sync, sender string) (key ed25519.PublicKey, ok bool, err error) {
	if sync != k.sync {
		return nil, false, nil
	}
	err = k.st.View(noCtx(), func(tx *store.Tx) error {
		key, ok, err = txSenderKey(tx, sync, sender)
		return err
	})
	return key, ok, err
}

// txKeyring answers from inside a transaction (release re-opens stored
// envelopes while it holds the write lock).
type txKeyring struct {
	tx   *store.Tx
	sync string
}

func (k txKeyring) Identity(sync string) (age.Identity, bool, error) {
	if sync != k.sync {
		return nil, false, nil
	}
	return txIdentity(k.tx, sync)
}

func (k txKeyring) SenderKey(sync, sender string) (ed25519.PublicKey, bool, error) {
	if sync != k.sync {
		return nil, false, nil
	}
	return txSenderKey(k.tx, sync, sender)
}

func txIdentity(tx *store.Tx, sync string) (age.Identity, bool, error) {
	keys, err := tx.KeysGet(sync)
	if errors.Is(err, store.ErrNotFound) || (err == nil && keys.AgeIdentity == "") {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	id, err := age.ParseX25519Identity(strings.TrimSpace(keys.AgeIdentity))
	if err != nil {
		// A broken stored key is not a property of the envelope: say so
		// as a keyring failure, without quoting the key.
		return nil, false, errors.New("stored age identity of the sync does not parse")
	}
	return id, true, nil
}

func txSenderKey(tx *store.Tx, sync, sender string) (ed25519.PublicKey, bool, error) {
	s, err := tx.SyncGet(sync)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if s.PeerNode == "" || sender != s.PeerNode {
		return nil, false, nil
	}
	keys, err := tx.KeysGet(sync)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if len(keys.PeerSigningKey) != ed25519.PublicKeySize {
		return nil, false, nil
	}
	return ed25519.PublicKey(keys.PeerSigningKey), true, nil
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
