package wire

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"filippo.io/age"
)

// Keyring answers Open's questions about keys. Implementations are backed
// by the store (keys exchanged in the handshake) or, in tests, MemKeyring.
// An error means the keyring could not answer (Open wraps it in ErrKeyring
// so the caller retries); "not found" is ok == false, not an error.
type Keyring interface {
	// Identity returns our age identity for the sync; ok is false when we do
	// not take part in the sync.
	Identity(sync string) (id age.Identity, ok bool, err error)
	// SenderKey returns the Ed25519 public key of node sender in the sync;
	// ok is false when there is none on record.
	SenderKey(sync, sender string) (key ed25519.PublicKey, ok bool, err error)
}

// NodeKeys is one node's secret key set for one sync: the Ed25519 key it
// signs envelopes with and the age X25519 identity the peer encrypts to.
// It prints as "<secret>" so it cannot leak through logs.
type NodeKeys struct {
	Signing  ed25519.PrivateKey
	Identity *age.X25519Identity
}

// GenerateNodeKeys generates a fresh key set from crypto/rand.
func GenerateNodeKeys() (NodeKeys, error) {
	_, sk, err := ed25519.GenerateKey(nil)
	if err != nil {
		return NodeKeys{}, fmt.Errorf("generate signing key: %w", err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return NodeKeys{}, fmt.Errorf("generate age identity: %w", err)
	}
	return NodeKeys{Signing: sk, Identity: id}, nil
}

// Public returns the public half, to hand to the peer.
func (k NodeKeys) Public() PublicKeys {
	return PublicKeys{
		Signing:   k.Signing.Public().(ed25519.PublicKey),
		Recipient: k.Identity.Recipient(),
	}
}

// String hides the secrets.
func (k NodeKeys) String() string { return "<secret>" }

// GoString hides the secrets from %#v too.
func (k NodeKeys) GoString() string { return "wire.NodeKeys{<secret>}" }

// Secret text prefixes.
const (
	signingPublicPrefix = "jbsig-ed25519:"
	signingSeedPrefix   = "JBSIG-ED25519-SEED:"
)

// SecretText returns the secret key set as one line of text, for the store:
// "JBSIG-ED25519-SEED:<base64url seed> AGE-SECRET-KEY-1...". Whoever holds
// it can sign and decrypt as this node.
func (k NodeKeys) SecretText() string {
	return signingSeedPrefix + base64.RawURLEncoding.EncodeToString(k.Signing.Seed()) + " " + k.Identity.String()
}

// ParseNodeKeys parses the text SecretText writes. Its errors never quote
// the input.
func ParseNodeKeys(s string) (NodeKeys, error) {
	sig, id, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok {
		return NodeKeys{}, errors.New("parse node keys: want \"<signing seed> <age identity>\"")
	}
	seedText, ok := strings.CutPrefix(sig, signingSeedPrefix)
	if !ok {
		return NodeKeys{}, fmt.Errorf("parse node keys: signing seed must start with %s", signingSeedPrefix)
	}
	seed, err := base64.RawURLEncoding.DecodeString(seedText)
	if err != nil || len(seed) != ed25519.SeedSize {
		return NodeKeys{}, errors.New("parse node keys: malformed signing seed")
	}
	ident, err := age.ParseX25519Identity(strings.TrimSpace(id))
	if err != nil {
		return NodeKeys{}, errors.New("parse node keys: malformed age identity")
	}
	return NodeKeys{Signing: ed25519.NewKeyFromSeed(seed), Identity: ident}, nil
}

// PublicKeys is what a node publishes to its peer in the handshake: the key
// that verifies its signatures and the recipient to encrypt to.
type PublicKeys struct {
	Signing   ed25519.PublicKey
	Recipient *age.X25519Recipient
}

// FormatSigningKey encodes an Ed25519 public key as text:
// "jbsig-ed25519:<base64url>".
func FormatSigningKey(k ed25519.PublicKey) string {
	return signingPublicPrefix + base64.RawURLEncoding.EncodeToString(k)
}

// ParseSigningKey parses the text FormatSigningKey writes.
func ParseSigningKey(s string) (ed25519.PublicKey, error) {
	t, ok := strings.CutPrefix(strings.TrimSpace(s), signingPublicPrefix)
	if !ok {
		return nil, fmt.Errorf("parse signing key: must start with %s", signingPublicPrefix)
	}
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("parse signing key: malformed key")
	}
	return ed25519.PublicKey(b), nil
}

// String returns "jbsig-ed25519:<base64url> age1...", the one-line form
// for the handshake file.
func (p PublicKeys) String() string {
	if len(p.Signing) != ed25519.PublicKeySize || p.Recipient == nil {
		return "<incomplete public keys>"
	}
	return FormatSigningKey(p.Signing) + " " + p.Recipient.String()
}

// MarshalText writes String, so the keys are a plain string in YAML and JSON.
func (p PublicKeys) MarshalText() ([]byte, error) {
	if len(p.Signing) != ed25519.PublicKeySize || p.Recipient == nil {
		return nil, errors.New("marshal public keys: incomplete")
	}
	return []byte(p.String()), nil
}

// UnmarshalText parses the form MarshalText writes.
func (p *PublicKeys) UnmarshalText(b []byte) error {
	k, err := ParsePublicKeys(string(b))
	if err != nil {
		return err
	}
	*p = k
	return nil
}

// ParsePublicKeys parses "jbsig-ed25519:<base64url> age1...".
func ParsePublicKeys(s string) (PublicKeys, error) {
	sig, rcpt, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok {
		return PublicKeys{}, errors.New("parse public keys: want \"<signing key> <age recipient>\"")
	}
	pub, err := ParseSigningKey(sig)
	if err != nil {
		return PublicKeys{}, fmt.Errorf("parse public keys: %w", err)
	}
	r, err := age.ParseX25519Recipient(strings.TrimSpace(rcpt))
	if err != nil {
		return PublicKeys{}, fmt.Errorf("parse public keys: malformed age recipient: %w", err)
	}
	return PublicKeys{Signing: pub, Recipient: r}, nil
}

// MemKeyring is an in-memory Keyring, safe for concurrent use: for tests,
// the demo, and a store-backed keyring's cache.
type MemKeyring struct {
	mu    sync.RWMutex
	syncs map[string]*memSync
}

type memSync struct {
	id      age.Identity
	senders map[string]ed25519.PublicKey
}

// NewMemKeyring returns an empty keyring.
func NewMemKeyring() *MemKeyring { return &MemKeyring{syncs: map[string]*memSync{}} }

// AddSync makes sync known, with our identity for it.
func (k *MemKeyring) AddSync(sync string, id age.Identity) {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.syncs[sync]
	if s == nil {
		s = &memSync{senders: map[string]ed25519.PublicKey{}}
		k.syncs[sync] = s
	}
	s.id = id
}

// AddSender records the signing key of node sender in sync; the sync must
// have been added.
func (k *MemKeyring) AddSender(sync, sender string, pub ed25519.PublicKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.syncs[sync]
	if s == nil {
		return fmt.Errorf("add sender: %w: %q", ErrUnknownSync, clip(sync))
	}
	s.senders[sender] = append(ed25519.PublicKey(nil), pub...)
	return nil
}

// Identity implements Keyring.
func (k *MemKeyring) Identity(sync string) (age.Identity, bool, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	s := k.syncs[sync]
	if s == nil || s.id == nil {
		return nil, false, nil
	}
	return s.id, true, nil
}

// SenderKey implements Keyring.
func (k *MemKeyring) SenderKey(sync, sender string) (ed25519.PublicKey, bool, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	s := k.syncs[sync]
	if s == nil {
		return nil, false, nil
	}
	pub, ok := s.senders[sender]
	return pub, ok, nil
}
