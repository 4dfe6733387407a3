package store

import (
	"database/sql"
	"time"
)

// Keys is the key material of one sync. Private keys are stored as given
// (the database file is 0600); the handshake secret is kept only as a hash.
type Keys struct {
	SyncID              string
	SigningKey          []byte // own Ed25519 private key
	AgeIdentity         string // own age X25519 identity ("AGE-SECRET-KEY-1...")
	PeerSigningKey      []byte // peer Ed25519 public key; nil until the handshake
	PeerAgeRecipient    string // peer age recipient ("age1..."); empty until the handshake
	HandshakeSecretHash []byte
	UpdatedAt           time.Time
}

// KeysPut creates or replaces the keys of a sync (the sync must exist).
func (t *Tx) KeysPut(k Keys) error {
	_, err := t.exec("put keys of sync "+k.SyncID, `
INSERT INTO sync_keys (sync_id, signing_key, age_identity, peer_signing_key, peer_age_recipient,
                       handshake_secret_hash, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (sync_id) DO UPDATE SET
    signing_key = excluded.signing_key, age_identity = excluded.age_identity,
    peer_signing_key = excluded.peer_signing_key, peer_age_recipient = excluded.peer_age_recipient,
    handshake_secret_hash = excluded.handshake_secret_hash, updated_at = excluded.updated_at`,
		k.SyncID, k.SigningKey, k.AgeIdentity, k.PeerSigningKey, k.PeerAgeRecipient,
		k.HandshakeSecretHash, t.nowMS())
	return err
}

// KeysGet returns the keys of a sync or ErrNotFound.
func (t *Tx) KeysGet(syncID string) (Keys, error) {
	k := Keys{SyncID: syncID}
	var updated sql.NullInt64
	err := t.queryRow(`SELECT signing_key, age_identity, peer_signing_key, peer_age_recipient,
	handshake_secret_hash, updated_at FROM sync_keys WHERE sync_id = ?`, syncID).
		Scan(&k.SigningKey, &k.AgeIdentity, &k.PeerSigningKey, &k.PeerAgeRecipient,
			&k.HandshakeSecretHash, &updated)
	if err != nil {
		return Keys{}, notFound("get keys of sync "+syncID, err)
	}
	k.UpdatedAt = fromMS(updated)
	return k, nil
}
