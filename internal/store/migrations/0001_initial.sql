-- 0001: the first schema of the jirabridge store.
-- Times are unix milliseconds (INTEGER); NULL means "not yet".
-- Sealed bytes are BLOBs exactly as internal/wire produced them.

-- syncs: one row per sync definition this bridge takes part in: who we are
-- (role, node id), what we sync (project, sync user), how (transport kind),
-- and the lifecycle state shown by `status` with the reason for it.
CREATE TABLE syncs (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('master', 'slave')),
    project_key  TEXT NOT NULL,
    sync_user    TEXT NOT NULL,
    transport    TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('CREATED', 'HANDSHAKE', 'STOPPED', 'RUNNING',
                                                'WAITING FOR SLAVE', 'UPDATE REQUIRED', 'PAUSED')),
    state_reason TEXT NOT NULL DEFAULT '',
    self_node    TEXT NOT NULL,
    peer_node    TEXT NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- sync_keys: the key material of one sync: our own Ed25519 signing key and
-- age (X25519) identity, the peer's public keys learnt in the handshake, and
-- a hash of the handshake secret (never the secret itself).
CREATE TABLE sync_keys (
    sync_id               TEXT PRIMARY KEY REFERENCES syncs (id) ON DELETE CASCADE,
    signing_key           BLOB,
    age_identity          TEXT NOT NULL DEFAULT '',
    peer_signing_key      BLOB,
    peer_age_recipient    TEXT NOT NULL DEFAULT '',
    handshake_secret_hash BLOB,
    updated_at            INTEGER NOT NULL
);

-- outbox: sealed envelopes we send to the peer of a sync, by sequence number.
-- Sequence numbers are assigned inside the inserting transaction and are
-- contiguous from 1. A row is kept until acked, then for the retention
-- period (for audit and resend); pruned rows leave the tombstone in
-- outbox_pruned.
CREATE TABLE outbox (
    sync_id    TEXT NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    sent_at    INTEGER,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    acked_at   INTEGER,
    PRIMARY KEY (sync_id, seq)
) WITHOUT ROWID;
CREATE INDEX outbox_unsent ON outbox (sync_id, seq) WHERE sent_at IS NULL;
CREATE INDEX outbox_unacked ON outbox (sync_id, seq) WHERE acked_at IS NULL;

-- outbox_pruned: the tombstone of pruned outbox rows. Pruning removes an
-- acked prefix, so one watermark per sync says which sequence numbers
-- existed but are gone: a resend request at or below it is answered
-- "pruned", and the next sequence number never goes back below it.
CREATE TABLE outbox_pruned (
    sync_id   TEXT PRIMARY KEY REFERENCES syncs (id) ON DELETE CASCADE,
    through   INTEGER NOT NULL,
    pruned_at INTEGER NOT NULL
);

-- pending_changes: changes detection found but the batcher has not sealed
-- into an envelope yet. Stored as the engine gives them.
CREATE TABLE pending_changes (
    id         INTEGER PRIMARY KEY,
    sync_id    TEXT NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
    issue      TEXT NOT NULL,
    change     BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX pending_changes_sync ON pending_changes (sync_id, id);

-- inbox: sealed envelopes received from a peer, by (sync, sender, seq).
-- A row is 'stored' until its changes have been released to the replay
-- queue, then 'released'; released rows may be purged after the retention
-- period because inbox_cursors remembers what was held.
CREATE TABLE inbox (
    sync_id     TEXT NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
    sender      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    sealed      BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    state       TEXT NOT NULL DEFAULT 'stored' CHECK (state IN ('stored', 'released')),
    released_at INTEGER,
    PRIMARY KEY (sync_id, sender, seq)
) WITHOUT ROWID;

-- inbox_cursors: per (sync, sender), the highest sequence number held
-- contiguously from 1 (what we ack) and the highest seen at all; numbers
-- between them that are not in inbox are the gaps.
CREATE TABLE inbox_cursors (
    sync_id      TEXT NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
    sender       TEXT NOT NULL,
    contiguous   INTEGER NOT NULL DEFAULT 0,
    highest_seen INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sync_id, sender)
) WITHOUT ROWID;

-- replay: the per-issue lanes of inbound changes to apply. Order within a
-- lane is id order (the order changes were released from the inbox); only
-- the head of a lane may be applied, so a parked change blocks its issue
-- and no other.
CREATE TABLE replay (
    id              INTEGER PRIMARY KEY,
    sync_id         TEXT NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
    issue           TEXT NOT NULL,
    change_id       TEXT NOT NULL,
    change          BLOB NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'applied', 'parked', 'waiting_parent', 'skipped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (sync_id, change_id)
);
CREATE INDEX replay_lane ON replay (sync_id, issue, id);
CREATE INDEX replay_open ON replay (sync_id, state, next_attempt_at);

-- issue_pairs: which local issue is which peer issue, both ways.
CREATE TABLE issue_pairs (
    sync_id    TEXT NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
    local_id   TEXT NOT NULL,
    local_key  TEXT NOT NULL,
    peer_id    TEXT NOT NULL,
    peer_key   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (sync_id, local_id),
    UNIQUE (sync_id, peer_id)
);

-- applied_changes: the ledger of inbound changes already written to the
-- local Jira (exactly once), with what the write produced (created issue
-- id, comment id, ...).
CREATE TABLE applied_changes (
    change_id  TEXT PRIMARY KEY,
    sync_id    TEXT NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
    issue      TEXT NOT NULL DEFAULT '',
    result     TEXT NOT NULL DEFAULT '',
    applied_at INTEGER NOT NULL
);

-- sent_items: per local issue, what detection already sent (changelog ids,
-- comment id with its updated time, attachment ids, hashes of watcher and
-- link snapshots), so that the detection overlap never sends twice.
CREATE TABLE sent_items (
    sync_id   TEXT NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
    issue_id  TEXT NOT NULL,
    item_kind TEXT NOT NULL,
    item_id   TEXT NOT NULL,
    version   TEXT NOT NULL DEFAULT '',
    sent_at   INTEGER NOT NULL,
    PRIMARY KEY (sync_id, issue_id, item_kind, item_id)
) WITHOUT ROWID;

-- cursors: named positions (detection's updated cursor and the like).
-- Callers namespace the name (for example "<sync id>/detect").
CREATE TABLE cursors (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

-- failures: changes (or link events) the operator must see, with the error
-- that parked them; `messages list|show|retry|skip` works on these.
-- One row per change id; a repeated failure updates it.
CREATE TABLE failures (
    id            INTEGER PRIMARY KEY,
    sync_id       TEXT NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
    change_id     TEXT,
    issue_key     TEXT NOT NULL DEFAULT '',
    kind          TEXT NOT NULL DEFAULT '',
    error_class   TEXT NOT NULL DEFAULT '',
    error_text    TEXT NOT NULL DEFAULT '',
    first_seen_at INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 1,
    state         TEXT NOT NULL DEFAULT 'open'
                  CHECK (state IN ('open', 'retrying', 'skipped', 'resolved')),
    updated_at    INTEGER NOT NULL,
    UNIQUE (sync_id, change_id)
);
CREATE INDEX failures_state ON failures (sync_id, state, id);

-- conflicts: fields both sides changed before seeing each other's change,
-- and which side won (shown by `status`).
CREATE TABLE conflicts (
    id          INTEGER PRIMARY KEY,
    sync_id     TEXT NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
    issue       TEXT NOT NULL,
    field       TEXT NOT NULL,
    local_value TEXT NOT NULL DEFAULT '',
    local_at    INTEGER,
    peer_value  TEXT NOT NULL DEFAULT '',
    peer_at     INTEGER,
    winner      TEXT NOT NULL CHECK (winner IN ('local', 'peer')),
    at          INTEGER NOT NULL
);
CREATE INDEX conflicts_sync ON conflicts (sync_id, id);

-- quarantine: inbound messages that failed to verify or decode (unsigned,
-- bad signature, foreign, replayed, corrupt); kept for the operator, never
-- applied. sync_id is free text because the sync may be unknown.
CREATE TABLE quarantine (
    id            INTEGER PRIMARY KEY,
    sync_id       TEXT NOT NULL DEFAULT '',
    transport_ref TEXT NOT NULL DEFAULT '',
    reason        TEXT NOT NULL,
    raw           BLOB,
    path          TEXT NOT NULL DEFAULT '',
    at            INTEGER NOT NULL
);

-- link_state: what the link knows about the peer beyond the outbox and
-- inbox: when we last heard from it, when we last sent a heartbeat, the
-- highest ack the peer sent us and the highest ack we sent it.
CREATE TABLE link_state (
    sync_id           TEXT PRIMARY KEY REFERENCES syncs (id) ON DELETE CASCADE,
    last_heard_at     INTEGER,
    last_heartbeat_at INTEGER,
    peer_acked        INTEGER NOT NULL DEFAULT 0,
    ack_sent          INTEGER NOT NULL DEFAULT 0,
    ack_sent_at       INTEGER
);
