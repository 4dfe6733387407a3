// Package handshake is the lifecycle of a sync as Backbone's distributed
// configuration has it: the master creates the sync and writes a handshake
// file (Init), the slave joins with that file (Join), the two exchange a
// proven Handshake message and a ping each way (Receive), the master
// publishes its aliases (Publish) and the slave adopts them once its own
// sync definition maps them all (Reconcile); Start and Stop move a set-up
// sync between STOPPED and RUNNING.
//
// Every function works inside one store transaction and takes or returns
// sealed bytes, so the lifecycle can be tested directly and carried by any
// transport: outgoing lifecycle messages are appended to the outbox with
// OutboxAppendFunc (so the link sends and re-sends them like any envelope),
// and incoming ones are handed to Receive by whoever reads the transport.
//
// # Why the Handshake message is safe
//
// The master has never seen the slave's keys when the slave's first message
// arrives, so it cannot verify a signature by the slave's own key. What the
// two share is the one-time secret in the handshake file, which travelled
// out of band over a channel both sites trust. Both derive from it (HKDF-like,
// with HMAC-SHA-256 and fixed labels) a proof key K and from K:
//
//   - an Ed25519 "handshake signing key". The slave seals the Handshake
//     envelope with it; the master derives the same public key, so
//     wire.Open verifies the signature over the clear header and the
//     ciphertext BEFORE decrypting, as every other envelope. Nobody without
//     the secret can produce an envelope that passes: a forged handshake
//     costs one signature check and never reaches a decoder.
//   - an HMAC key. Inside the encrypted body the slave sends its node id and
//     public keys with HMAC(K, sync id, master node, slave node, slave keys).
//     The master recomputes it: the keys it is about to trust were chosen by
//     the holder of the secret, for this sync and this master, and not
//     swapped by anyone who saw (or replayed) a different message.
//   - The body also carries a signature over the same bytes by the slave's
//     real signing key (proof of possession), so the slave cannot register a
//     key it does not hold.
//
// The envelope is encrypted to the master's age recipient from the file, so
// a mail server that sees the handshake learns nothing, and the secret never
// travels in any message. The master keeps only K (not the printable
// secret) and erases it the moment it accepts a slave: the secret is good
// for exactly one join. A second join with the same file, a replay of the
// first Handshake message to another master, or a Handshake for another
// sync (whose K differs) is refused and recorded in quarantine with its
// reason. After acceptance both sides use only their own keys: every later
// envelope is signed by the sender's key learnt in the handshake and
// encrypted to the receiver's recipient.
//
// Someone who steals the handshake file before the real slave joins can
// join in its place; the real slave's join is then refused and reported,
// which is the signal to delete the sync and start over. That is the
// documented limit: keep the file as secret as a password until the join
// is confirmed, then delete it.
package handshake

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// ProtocolVersion is the version of the handshake file and of the
// lifecycle message bodies this build writes and reads.
const ProtocolVersion = 1

// FileKind is the "kind" every handshake file carries, so that a file of
// another sort is recognised at once.
const FileKind = "jirabridge-handshake"

// fileWhat is the comment-like field of the file: what it is and what to do
// with it, for a person who finds it in a mailbox or on a USB stick.
const fileWhat = "jirabridge handshake file: give it to the administrator of the partner " +
	"bridge over a channel you trust, who runs `jirabridge join FILE` with it. It holds " +
	"only public keys and a one-time secret (no private key); the secret works for one " +
	"join. Delete the file once the partner has joined."

// Errors callers test with errors.Is.
var (
	// ErrBadFile: the handshake file cannot be used (not a handshake file,
	// unreadable, missing parts).
	ErrBadFile = errors.New("bad handshake file")
	// ErrAlreadyJoined: this bridge already has the sync of the file.
	ErrAlreadyJoined = errors.New("sync already joined")
	// ErrExists: a sync of that name already exists in this data directory.
	ErrExists = errors.New("sync already exists")
	// ErrRefused: an incoming lifecycle message was refused (forged, for
	// another sync, a second join, out of order); it is quarantined.
	ErrRefused = errors.New("lifecycle message refused")
	// ErrNotLifecycle: the envelope is not a handshake or config message;
	// the link handles it.
	ErrNotLifecycle = errors.New("not a lifecycle message")
	// ErrState: the operation is not possible in the sync's current state;
	// the message says what to do.
	ErrState = errors.New("not possible in this state")
	// ErrFixed: the project key or the sync user differs from the one the
	// sync was created with.
	ErrFixed = errors.New("fixed at creation")
)

// File is the handshake file the master writes and the slave reads. It is
// JSON so that a person can read it; What says what it is.
type File struct {
	What       string          `json:"what"`
	Kind       string          `json:"kind"`
	Version    int             `json:"version"`
	SyncID     string          `json:"sync_id"`
	SyncName   string          `json:"sync_name"`
	MasterNode string          `json:"master_node"`
	MasterKeys wire.PublicKeys `json:"master_keys"`
	// Transport is how the master's bridge exchanges envelopes
	// ("smtp+imap" or "file"); the slave must use the same kind.
	Transport string `json:"transport"`
	// MasterAddress is the master bridge's mailbox: the slave sets it as
	// its JIRABRIDGE_SMTP_PEER_ADDRESS.
	MasterAddress string `json:"master_address,omitempty"`
	// FileDropNote says where the master's envelopes will be put down and
	// picked up, for the file transport.
	FileDropNote string `json:"file_drop_note,omitempty"`
	// Secret is the one-time handshake secret (base64url, 32 random bytes).
	Secret    string    `json:"secret"`
	CreatedAt time.Time `json:"created_at"`
}

// Marshal returns the file's bytes (indented JSON with a final newline).
func (f File) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode handshake file: %w", err)
	}
	return append(b, '\n'), nil
}

// WriteFile writes the file with mode 0600 (it carries the secret),
// atomically.
func (f File) WriteFile(path string) error {
	b, err := f.Marshal()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".handshake-*")
	if err != nil {
		return fmt.Errorf("write handshake file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write handshake file: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write handshake file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write handshake file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write handshake file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write handshake file: %w", err)
	}
	return nil
}

// ParseFile parses and checks a handshake file. Its errors never quote the
// secret.
func ParseFile(b []byte) (File, error) {
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return File{}, fmt.Errorf("%w: not JSON (is this the file `jirabridge init` wrote?)", ErrBadFile)
	}
	if f.Kind != FileKind {
		return File{}, fmt.Errorf("%w: kind is %q, want %q", ErrBadFile, f.Kind, FileKind)
	}
	if f.Version != ProtocolVersion {
		return File{}, fmt.Errorf("%w: version %d, this jirabridge reads version %d: use the same jirabridge version on both sides",
			ErrBadFile, f.Version, ProtocolVersion)
	}
	var probs []string
	if f.SyncID == "" || len(f.SyncID) > wire.MaxIDLen {
		probs = append(probs, "sync_id is missing or too long")
	}
	if f.MasterNode == "" || len(f.MasterNode) > wire.MaxIDLen {
		probs = append(probs, "master_node is missing or too long")
	}
	if f.MasterKeys.Signing == nil || f.MasterKeys.Recipient == nil {
		probs = append(probs, "master_keys is missing")
	}
	if sec, err := base64.RawURLEncoding.DecodeString(f.Secret); err != nil || len(sec) < 16 {
		probs = append(probs, "secret is missing or damaged")
	}
	if len(probs) > 0 {
		return File{}, fmt.Errorf("%w: %s", ErrBadFile, strings.Join(probs, "; "))
	}
	return f, nil
}

// ReadFile reads and parses a handshake file.
func ReadFile(path string) (File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("read handshake file: %w", err)
	}
	return ParseFile(b)
}

// proofKey is K: what both sides derive from the printable secret. The
// master stores K (store.Keys.HandshakeSecretHash), never the secret.
func proofKey(secret string) []byte {
	h := sha256.New()
	h.Write([]byte("jirabridge handshake proof key v1\x00"))
	h.Write([]byte(secret))
	return h.Sum(nil)
}

func derive(k []byte, label string) []byte {
	m := hmac.New(sha256.New, k)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// handshakeSigner is the Ed25519 key both sides derive from K for the
// Handshake envelope only.
func handshakeSigner(k []byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(derive(k, "jirabridge handshake signing key v1"))
}

// joinProof is the byte string the HMAC and the proof of possession cover.
// Lengths prefix every part so that no two different tuples give the same
// bytes.
func joinProof(syncID, masterNode, slaveNode, slaveKeys string) []byte {
	var b []byte
	for _, s := range []string{"jirabridge join v1", syncID, masterNode, slaveNode, slaveKeys} {
		b = fmt.Appendf(b, "%d:%s;", len(s), s)
	}
	return b
}

func joinMAC(k []byte, proof []byte) []byte {
	m := hmac.New(sha256.New, derive(k, "jirabridge handshake mac key v1"))
	m.Write(proof)
	return m.Sum(nil)
}

// randomID returns prefix + 16 random hex digits.
func randomID(prefix string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate id: %w", err)
	}
	return prefix + hex.EncodeToString(b[:]), nil
}

func newSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate handshake secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// InitParams is what the master's sync is created with.
type InitParams struct {
	Name       string // sync name (from the sync definition)
	ProjectKey string // local Jira project key; fixed for the sync's life
	SyncUser   string // the Jira user the bridge acts as; fixed
	Transport  string // "smtp+imap" or "file"
	// Address is this bridge's mailbox (JIRABRIDGE_SMTP_FROM) for the
	// smtp+imap transport; FileDropNote describes the exchange for file.
	Address      string
	FileDropNote string
}

func (p InitParams) check() error {
	var probs []string
	if p.Name == "" {
		probs = append(probs, "the sync name is empty (set name: in the sync definition)")
	}
	if p.ProjectKey == "" {
		probs = append(probs, "the project key is empty (set project: in the sync definition)")
	}
	if p.SyncUser == "" {
		probs = append(probs, "the sync user is empty (set JIRABRIDGE_JIRA_USER)")
	}
	if p.Transport == "" {
		probs = append(probs, "the transport kind is empty (set JIRABRIDGE_TRANSPORT)")
	}
	if len(probs) > 0 {
		return errors.New(strings.Join(probs, "; "))
	}
	return nil
}

// SyncByName returns the sync of the given name; ErrNotFound wraps when
// there is none.
func SyncByName(tx *store.Tx, name string) (store.Sync, error) {
	all, err := tx.SyncList()
	if err != nil {
		return store.Sync{}, fmt.Errorf("list syncs: %w", err)
	}
	for _, s := range all {
		if s.Name == name {
			return s, nil
		}
	}
	return store.Sync{}, fmt.Errorf("no sync named %q in this data directory: %w", name, store.ErrNotFound)
}

// Init creates the master's side of a new sync: the sync row (role master,
// state CREATED), fresh keys (private keys only in the store), and the
// handshake file to hand to the slave. The secret in the file is not
// stored; only the proof key derived from it is.
func Init(tx *store.Tx, p InitParams) (File, error) {
	if err := p.check(); err != nil {
		return File{}, fmt.Errorf("init sync: %w", err)
	}
	if s, err := SyncByName(tx, p.Name); err == nil {
		return File{}, fmt.Errorf("init sync %q: %w (id %s, role %s, state %s); choose another name, or delete the data directory to start over",
			p.Name, ErrExists, s.ID, s.Role, s.State)
	} else if !errors.Is(err, store.ErrNotFound) {
		return File{}, fmt.Errorf("init sync %q: %w", p.Name, err)
	}
	syncID, err := randomID("sync-")
	if err != nil {
		return File{}, err
	}
	node, err := randomID("node-")
	if err != nil {
		return File{}, err
	}
	keys, err := wire.GenerateNodeKeys()
	if err != nil {
		return File{}, fmt.Errorf("init sync: generate keys: %w", err)
	}
	secret, err := newSecret()
	if err != nil {
		return File{}, err
	}
	if err := tx.SyncPut(store.Sync{
		ID: syncID, Name: p.Name, Role: store.RoleMaster, ProjectKey: p.ProjectKey, SyncUser: p.SyncUser,
		Transport: p.Transport, State: store.StateCreated, SelfNode: node,
	}); err != nil {
		return File{}, fmt.Errorf("init sync: %w", err)
	}
	if err := tx.KeysPut(store.Keys{
		SyncID: syncID, SigningKey: keys.Signing, AgeIdentity: keys.Identity.String(),
		HandshakeSecretHash: proofKey(secret),
	}); err != nil {
		return File{}, fmt.Errorf("init sync: %w", err)
	}
	return File{
		What: fileWhat, Kind: FileKind, Version: ProtocolVersion,
		SyncID: syncID, SyncName: p.Name, MasterNode: node, MasterKeys: keys.Public(),
		Transport: p.Transport, MasterAddress: p.Address, FileDropNote: p.FileDropNote,
		Secret: secret, CreatedAt: tx.Now().UTC().Truncate(time.Second),
	}, nil
}

// JoinParams is what the slave's side of the sync is created with.
type JoinParams struct {
	Name       string // local sync name; default the file's
	ProjectKey string // local Jira project key; fixed
	SyncUser   string // local sync user; fixed
	Transport  string // must equal the file's
}

// joinBody is the body of the slave's Handshake envelope.
type joinBody struct {
	Type       string `json:"type"` // "join"
	Version    int    `json:"version"`
	Sync       string `json:"sync"`
	MasterNode string `json:"master_node"`
	SlaveNode  string `json:"slave_node"`
	SlaveKeys  string `json:"slave_keys"`
	MAC        []byte `json:"mac"` // HMAC(K, joinProof)
	PoP        []byte `json:"pop"` // Ed25519 by the slave's own key over joinProof
}

// pingBody is the body of the master's ping and the slave's pong.
type pingBody struct {
	Type    string `json:"type"` // "ping" or "pong"
	Version int    `json:"version"`
}

// Join creates the slave's side of the sync from the master's handshake
// file: the sync row (role slave, state HANDSHAKE, the master as peer),
// the master's public keys and fresh keys of its own, and the Handshake
// message in the outbox (sequence number 1 of the slave's direction),
// which the link sends. It returns the slave's sync.
func Join(tx *store.Tx, f File, p JoinParams) (store.Sync, error) {
	if p.Name == "" {
		p.Name = f.SyncName
	}
	if f.Transport != "" && p.Transport != f.Transport {
		return store.Sync{}, fmt.Errorf("join sync %q: the master uses transport %q and this bridge %q: set JIRABRIDGE_TRANSPORT=%s",
			f.SyncName, f.Transport, p.Transport, f.Transport)
	}
	if err := (InitParams{Name: p.Name, ProjectKey: p.ProjectKey, SyncUser: p.SyncUser, Transport: p.Transport}).check(); err != nil {
		return store.Sync{}, fmt.Errorf("join sync: %w", err)
	}
	if s, err := tx.SyncGet(f.SyncID); err == nil {
		return store.Sync{}, fmt.Errorf("join sync %q: %w: this bridge joined it already (role %s, state %s); a handshake file is good for one join only",
			f.SyncName, ErrAlreadyJoined, s.Role, s.State)
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Sync{}, fmt.Errorf("join sync %q: %w", f.SyncName, err)
	}
	if s, err := SyncByName(tx, p.Name); err == nil {
		return store.Sync{}, fmt.Errorf("join sync %q: %w (id %s); a sync name is used once per data directory",
			p.Name, ErrExists, s.ID)
	}
	node, err := randomID("node-")
	if err != nil {
		return store.Sync{}, err
	}
	if node == f.MasterNode {
		return store.Sync{}, errors.New("join sync: generated node id equals the master's; run join again")
	}
	keys, err := wire.GenerateNodeKeys()
	if err != nil {
		return store.Sync{}, fmt.Errorf("join sync: generate keys: %w", err)
	}
	s := store.Sync{
		ID: f.SyncID, Name: p.Name, Role: store.RoleSlave, ProjectKey: p.ProjectKey, SyncUser: p.SyncUser,
		Transport: p.Transport, State: store.StateHandshake, SelfNode: node, PeerNode: f.MasterNode,
	}
	if err := tx.SyncPut(s); err != nil {
		return store.Sync{}, fmt.Errorf("join sync: %w", err)
	}
	if err := tx.KeysPut(store.Keys{
		SyncID: f.SyncID, SigningKey: keys.Signing, AgeIdentity: keys.Identity.String(),
		PeerSigningKey: f.MasterKeys.Signing, PeerAgeRecipient: f.MasterKeys.Recipient.String(),
	}); err != nil {
		return store.Sync{}, fmt.Errorf("join sync: %w", err)
	}
	k := proofKey(f.Secret)
	pub := keys.Public().String()
	proof := joinProof(f.SyncID, f.MasterNode, node, pub)
	body, err := json.Marshal(joinBody{
		Type: "join", Version: ProtocolVersion, Sync: f.SyncID, MasterNode: f.MasterNode, SlaveNode: node,
		SlaveKeys: pub, MAC: joinMAC(k, proof), PoP: ed25519.Sign(keys.Signing, proof),
	})
	if err != nil {
		return store.Sync{}, fmt.Errorf("join sync: encode handshake: %w", err)
	}
	signer := handshakeSigner(k)
	now := tx.Now()
	_, err = tx.OutboxAppendFunc(f.SyncID, wire.KindHandshake, func(seq uint64) ([]byte, error) {
		return wire.Seal(wire.Envelope{
			Header: wire.Header{Sync: f.SyncID, Sender: node, Seq: seq, Kind: wire.KindHandshake, Created: now},
			Body:   body,
		}, signer, f.MasterKeys.Recipient)
	})
	if err != nil {
		return store.Sync{}, fmt.Errorf("join sync: queue the handshake message: %w", err)
	}
	return s, nil
}
