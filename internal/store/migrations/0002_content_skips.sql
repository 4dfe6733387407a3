-- 0002: what the bridge left out of a sync on purpose, per item, for
-- `jirabridge status` and the daemon's /status.

-- content_skips: one row per item the bridge skipped and still skips:
-- direction 'outgoing' when detection did not send it (a link to an issue
-- that is not synced, a watcher the user policy cannot send, a filtered
-- attachment, a restricted comment), 'incoming' when the applier could not
-- apply it here (a watcher nobody here matches, a link whose other end has
-- not arrived or whose type is not mapped). issue_id is the local issue;
-- item is the link id, username, attachment id or comment id. A row is
-- updated (last_seen_at, reason) each time the skip is seen again and
-- deleted when it no longer applies (the link was made, the watcher left).
CREATE TABLE content_skips (
    id            INTEGER PRIMARY KEY,
    sync_id       TEXT NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
    direction     TEXT NOT NULL CHECK (direction IN ('outgoing', 'incoming')),
    issue_id      TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('link', 'watcher', 'attachment', 'comment')),
    item          TEXT NOT NULL,
    issue_key     TEXT NOT NULL DEFAULT '',
    reason        TEXT NOT NULL,
    first_seen_at INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    UNIQUE (sync_id, direction, issue_id, kind, item)
);
CREATE INDEX content_skips_newest ON content_skips (sync_id, last_seen_at, id);
