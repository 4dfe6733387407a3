package wire

import (
	"bytes"
	"compress/flate"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"filippo.io/age"
)

// Version is the envelope protocol version this build writes and reads.
const Version = 1

// Envelope kinds; the same strings as transport.KindChanges and friends
// (package transport depends on wire, so wire cannot import them).
const (
	KindChanges   = "changes"   // body: EncodeChanges
	KindControl   = "control"   // body: EncodeControl
	KindConfig    = "config"    // body: defined by the handshake/publish issue
	KindHandshake = "handshake" // body: defined by the handshake issue
)

// Limits that keep a hostile or broken input from costing memory.
const (
	// MaxBodySize is the largest plaintext body Seal accepts and Open
	// decompresses. Large attachments travel in chunks below this.
	MaxBodySize = 32 << 20
	// MaxIDLen bounds sync and node ids.
	MaxIDLen = 128
	// maxHeaderLen bounds the encoded header.
	maxHeaderLen = 1024
	// maxSealedSize bounds a whole frame: body plus age and framing overhead.
	maxSealedSize = MaxBodySize + 1<<20
)

// Header is the clear part of an envelope: what routing, the inbox and logs
// need without decrypting. It is covered by the signature, so after Open it
// is as trustworthy as the body; from PeekHeader it is not.
type Header struct {
	Version int       // protocol version; Seal uses Version when zero
	Sync    string    // sync id
	Sender  string    // sender node id
	Seq     uint64    // sequence number in the sender's direction, from 1
	Ack     uint64    // highest contiguous Seq the sender holds from us
	Kind    string    // one of the Kind constants
	Created time.Time // when the envelope was sealed; millisecond precision, UTC
}

// Envelope is one message between two bridges: a header and a plaintext
// body whose encoding depends on Kind.
type Envelope struct {
	Header
	Body []byte
}

// The frame, all integers big-endian:
//
//	magic   4 bytes  "JBRG"
//	version 1 byte   Version
//	hlen    2 bytes  length of header
//	header  hlen     canonical JSON of the header (headerJSON)
//	blen    4 bytes  length of body
//	body    blen     age ciphertext of the flate-compressed body
//	sig     64 bytes Ed25519ctx signature of everything before it
//
// The signature uses Ed25519ctx with sigContext so a node's signing key can
// never be tricked into signing a frame through another protocol.
const (
	magic      = "JBRG"
	sigContext = "jirabridge/wire/v1"
	createdFmt = "2006-01-02T15:04:05.000Z"
	prefixLen  = len(magic) + 1 + 2
)

// headerJSON fixes the field order and names of the encoded header.
type headerJSON struct {
	V       int    `json:"v"`
	Sync    string `json:"sync"`
	Sender  string `json:"sender"`
	Seq     uint64 `json:"seq"`
	Ack     uint64 `json:"ack"`
	Kind    string `json:"kind"`
	Created string `json:"created"`
}

func knownKind(k string) bool {
	switch k {
	case KindChanges, KindControl, KindConfig, KindHandshake:
		return true
	}
	return false
}

func validID(s string) bool { return s != "" && len(s) <= MaxIDLen }

// encodeHeader returns the one canonical encoding of h.
func encodeHeader(h Header) ([]byte, error) {
	b, err := json.Marshal(headerJSON{
		V: h.Version, Sync: h.Sync, Sender: h.Sender, Seq: h.Seq, Ack: h.Ack,
		Kind: h.Kind, Created: h.Created.UTC().Format(createdFmt),
	})
	if err != nil {
		return nil, err
	}
	if len(b) > maxHeaderLen {
		return nil, errors.New("header too long")
	}
	return b, nil
}

// Seal compresses env.Body, encrypts it to recipient (the peer's age
// recipient for this sync), and signs header and ciphertext with signer.
// Created is truncated to milliseconds. The body is not decoded: callers
// build it with EncodeChanges or EncodeControl. Sealing the same envelope
// twice gives different bytes (age encryption is randomized); both open to
// the same Envelope.
func Seal(env Envelope, signer ed25519.PrivateKey, recipient age.Recipient) ([]byte, error) {
	h := env.Header
	if h.Version == 0 {
		h.Version = Version
	}
	switch {
	case h.Version != Version:
		return nil, fmt.Errorf("seal envelope: version %d: %w", h.Version, ErrUnsupportedVersion)
	case !validID(h.Sync):
		return nil, fmt.Errorf("seal envelope: sync id must be 1 to %d bytes", MaxIDLen)
	case !validID(h.Sender):
		return nil, fmt.Errorf("seal envelope: sender id must be 1 to %d bytes", MaxIDLen)
	case !knownKind(h.Kind):
		return nil, fmt.Errorf("seal envelope: unknown kind %q", clip(h.Kind))
	case h.Created.IsZero():
		return nil, errors.New("seal envelope: no created time")
	case h.Created.UTC().Year() < 1 || h.Created.UTC().Year() > 9999:
		return nil, errors.New("seal envelope: created time out of range")
	case len(env.Body) > MaxBodySize:
		return nil, fmt.Errorf("seal envelope: body of %d bytes exceeds %d", len(env.Body), MaxBodySize)
	case len(signer) != ed25519.PrivateKeySize:
		return nil, errors.New("seal envelope: signing key is not an Ed25519 private key")
	case recipient == nil:
		return nil, errors.New("seal envelope: no recipient")
	}
	hdr, err := encodeHeader(h)
	if err != nil {
		return nil, fmt.Errorf("seal envelope: %w", err)
	}

	var ct bytes.Buffer
	ew, err := age.Encrypt(&ct, recipient)
	if err != nil {
		return nil, fmt.Errorf("seal envelope: encrypt: %w", err)
	}
	zw, err := flate.NewWriter(ew, flate.DefaultCompression)
	if err != nil {
		return nil, fmt.Errorf("seal envelope: compress: %w", err)
	}
	if _, err := zw.Write(env.Body); err != nil {
		return nil, fmt.Errorf("seal envelope: compress: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("seal envelope: compress: %w", err)
	}
	if err := ew.Close(); err != nil {
		return nil, fmt.Errorf("seal envelope: encrypt: %w", err)
	}

	out := make([]byte, 0, prefixLen+len(hdr)+4+ct.Len()+ed25519.SignatureSize)
	out = append(out, magic...)
	out = append(out, byte(h.Version))
	out = binary.BigEndian.AppendUint16(out, uint16(len(hdr)))
	out = append(out, hdr...)
	out = binary.BigEndian.AppendUint32(out, uint32(ct.Len()))
	out = append(out, ct.Bytes()...)
	sig, err := signer.Sign(nil, out, &ed25519.Options{Context: sigContext})
	if err != nil {
		return nil, fmt.Errorf("seal envelope: sign: %w", err)
	}
	return append(out, sig...), nil
}

// frame is a parsed but unverified envelope.
type frame struct {
	h      Header
	signed []byte // everything the signature covers
	body   []byte // ciphertext
	sig    []byte
}

// parseFrame checks magic, version and framing and decodes the header. It
// trusts nothing and verifies nothing.
func parseFrame(b []byte) (frame, error) {
	if len(b) < len(magic) || string(b[:len(magic)]) != magic {
		return frame{}, fmt.Errorf("no jirabridge magic: %w", ErrNotJirabridge)
	}
	if len(b) < prefixLen {
		return frame{}, fmt.Errorf("truncated frame: %w", ErrNotJirabridge)
	}
	if v := int(b[len(magic)]); v != Version {
		return frame{}, fmt.Errorf("envelope version %d, this build speaks %d: %w", v, Version, ErrUnsupportedVersion)
	}
	if len(b) > maxSealedSize {
		return frame{}, fmt.Errorf("frame of %d bytes exceeds %d: %w", len(b), maxSealedSize, ErrNotJirabridge)
	}
	hlen := int(binary.BigEndian.Uint16(b[len(magic)+1:]))
	if hlen > maxHeaderLen || len(b) < prefixLen+hlen+4 {
		return frame{}, fmt.Errorf("truncated or oversized header: %w", ErrNotJirabridge)
	}
	hdr := b[prefixLen : prefixLen+hlen]
	rest := b[prefixLen+hlen:]
	blen := uint64(binary.BigEndian.Uint32(rest))
	if uint64(len(rest)) != 4+blen+ed25519.SignatureSize {
		return frame{}, fmt.Errorf("body length does not match frame: %w", ErrNotJirabridge)
	}
	h, err := decodeHeader(hdr)
	if err != nil {
		return frame{}, err
	}
	end := len(b) - ed25519.SignatureSize
	return frame{h: h, signed: b[:end], body: rest[4 : 4+blen], sig: b[end:]}, nil
}

// decodeHeader decodes a header and insists that it is in canonical form,
// so one header has exactly one encoding.
func decodeHeader(b []byte) (Header, error) {
	var hj headerJSON
	if err := strictUnmarshal(b, &hj); err != nil {
		return Header{}, fmt.Errorf("malformed header: %w", ErrNotJirabridge)
	}
	if hj.V != Version {
		// The frame's version byte already said Version.
		return Header{}, fmt.Errorf("header version does not match frame version: %w", ErrNotJirabridge)
	}
	created, err := time.Parse(createdFmt, hj.Created)
	if err != nil {
		return Header{}, fmt.Errorf("malformed created time in header: %w", ErrNotJirabridge)
	}
	h := Header{
		Version: hj.V, Sync: hj.Sync, Sender: hj.Sender, Seq: hj.Seq, Ack: hj.Ack,
		Kind: hj.Kind, Created: created,
	}
	if !validID(h.Sync) || !validID(h.Sender) || !knownKind(h.Kind) {
		return Header{}, fmt.Errorf("header with bad sync, sender or kind: %w", ErrNotJirabridge)
	}
	canon, err := encodeHeader(h)
	if err != nil || !bytes.Equal(canon, b) {
		return Header{}, fmt.Errorf("header not in canonical form: %w", ErrNotJirabridge)
	}
	return h, nil
}

// PeekHeader returns the header of a sealed envelope WITHOUT verifying it.
// UNTRUSTED: anyone can write any header. Use it only to route (which sync,
// which keyring) and to label logs and quarantine records; never to decide
// whether to store, apply, ack or delete anything. Open returns the verified
// header.
func PeekHeader(b []byte) (Header, error) {
	f, err := parseFrame(b)
	if err != nil {
		return Header{}, fmt.Errorf("peek envelope header: %w", err)
	}
	return f.h, nil
}

// Open verifies and opens a sealed envelope. In order it checks the frame
// (ErrNotJirabridge, ErrUnsupportedVersion), that the sync is known
// (ErrUnknownSync) and the sender has a key (ErrUnknownSender), and the
// signature over header and ciphertext (ErrBadSignature); only then does it
// decrypt (ErrDecrypt), decompress and, for KindChanges and KindControl,
// check that the body decodes (ErrCorruptBody, ErrUnsupportedVersion). An
// ErrKeyring error means the keyring failed and the caller should retry.
// Open does not check Seq against replays: that is the inbox's job.
func Open(b []byte, keys Keyring) (Envelope, error) {
	f, err := parseFrame(b)
	if err != nil {
		return Envelope{}, fmt.Errorf("open envelope: %w", err)
	}
	h := f.h
	who := ids(h.Sync, h.Sender)
	id, ok, err := keys.Identity(h.Sync)
	if err != nil {
		return Envelope{}, fmt.Errorf("open envelope (%s): identity: %w: %w", who, ErrKeyring, err)
	}
	if !ok || id == nil {
		return Envelope{}, fmt.Errorf("open envelope (%s): %w", who, ErrUnknownSync)
	}
	pub, ok, err := keys.SenderKey(h.Sync, h.Sender)
	if err != nil {
		return Envelope{}, fmt.Errorf("open envelope (%s): sender key: %w: %w", who, ErrKeyring, err)
	}
	if !ok {
		return Envelope{}, fmt.Errorf("open envelope (%s): %w", who, ErrUnknownSender)
	}
	if len(pub) != ed25519.PublicKeySize {
		return Envelope{}, fmt.Errorf("open envelope (%s): keyring returned a malformed sender key: %w", who, ErrKeyring)
	}
	if err := ed25519.VerifyWithOptions(pub, f.signed, f.sig, &ed25519.Options{Context: sigContext}); err != nil {
		return Envelope{}, fmt.Errorf("open envelope (%s seq %d): %w", who, h.Seq, ErrBadSignature)
	}

	// The signature is good: from here on the bytes are the peer's own.
	dr, err := age.Decrypt(bytes.NewReader(f.body), id)
	if err != nil {
		return Envelope{}, fmt.Errorf("open envelope (%s seq %d): %w", who, h.Seq, ErrDecrypt)
	}
	compressed, err := io.ReadAll(dr)
	if err != nil {
		return Envelope{}, fmt.Errorf("open envelope (%s seq %d): %w", who, h.Seq, ErrDecrypt)
	}
	zr := flate.NewReader(bytes.NewReader(compressed))
	body, err := io.ReadAll(io.LimitReader(zr, MaxBodySize+1))
	if err != nil {
		return Envelope{}, fmt.Errorf("open envelope (%s seq %d): decompress: %w", who, h.Seq, ErrCorruptBody)
	}
	if len(body) > MaxBodySize {
		return Envelope{}, fmt.Errorf("open envelope (%s seq %d): body exceeds %d bytes: %w", who, h.Seq, MaxBodySize, ErrCorruptBody)
	}
	switch h.Kind {
	case KindChanges:
		_, err = DecodeChanges(body)
	case KindControl:
		_, err = DecodeControl(body)
	}
	if err != nil {
		return Envelope{}, fmt.Errorf("open envelope (%s seq %d): %w", who, h.Seq, err)
	}
	return Envelope{Header: h, Body: body}, nil
}
