package store

import (
	"database/sql"
	"errors"
	"fmt"
)

// CursorGet returns a named cursor's value; ok is false if it was never set.
func (t *Tx) CursorGet(name string) (value string, ok bool, err error) {
	err = t.queryRow(`SELECT value FROM cursors WHERE name = ?`, name).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read cursor %s: %w", name, err)
	}
	return value, true, nil
}

// CursorSet sets a named cursor. Set it in the same transaction as the
// outbox writes it covers, so it never runs ahead of them.
func (t *Tx) CursorSet(name, value string) error {
	_, err := t.exec("set cursor "+name, `INSERT INTO cursors (name, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		name, value, t.nowMS())
	return err
}
