package store

import (
	"errors"
	"testing"
	"time"
)

func TestFailureTransitions(t *testing.T) {
	t.Parallel()
	s, clk := open(t)
	var id int64
	update(t, s, func(tx *Tx) error {
		var err error
		id, err = tx.FailureRecord(Failure{SyncID: testSync, ChangeID: "c1", IssueKey: "ABC-1", Kind: "update",
			ErrorClass: "permanent", ErrorText: "field x cannot be set"})
		return err
	})
	t0 := clk.Now()
	clk.Add(time.Minute)

	tests := []struct {
		name    string
		do      func(*Tx) error
		want    FailureState
		wantErr error
	}{
		{"retry open", func(tx *Tx) error { return tx.FailureRetry(id) }, FailureRetrying, nil},
		{"retry while retrying", func(tx *Tx) error { return tx.FailureRetry(id) }, FailureRetrying, ErrBadTransition},
		{"fails again reopens", func(tx *Tx) error {
			_, err := tx.FailureRecord(Failure{SyncID: testSync, ChangeID: "c1", IssueKey: "ABC-1", Kind: "update",
				ErrorClass: "permanent", ErrorText: "still broken"})
			return err
		}, FailureOpen, nil},
		{"retry", func(tx *Tx) error { return tx.FailureRetry(id) }, FailureRetrying, nil},
		{"resolve", func(tx *Tx) error { return tx.FailureResolve(id) }, FailureResolved, nil},
		{"retry resolved", func(tx *Tx) error { return tx.FailureRetry(id) }, FailureResolved, ErrBadTransition},
		{"skip resolved", func(tx *Tx) error { return tx.FailureSkip(id) }, FailureResolved, ErrBadTransition},
		{"fails once more", func(tx *Tx) error {
			_, err := tx.FailureRecord(Failure{SyncID: testSync, ChangeID: "c1", ErrorText: "again"})
			return err
		}, FailureOpen, nil},
		{"skip", func(tx *Tx) error { return tx.FailureSkip(id) }, FailureSkipped, nil},
		{"retry skipped", func(tx *Tx) error { return tx.FailureRetry(id) }, FailureSkipped, ErrBadTransition},
		{"resolve skipped", func(tx *Tx) error { return tx.FailureResolve(id) }, FailureSkipped, ErrBadTransition},
	}
	for _, tc := range tests {
		err := s.Update(t.Context(), tc.do)
		if (tc.wantErr == nil && err != nil) || !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: got error %v, want %v", tc.name, err, tc.wantErr)
		}
		view(t, s, func(tx *Tx) error {
			f, err := tx.FailureGet(id)
			if err != nil {
				return err
			}
			if f.State != tc.want {
				t.Errorf("%s: state %s, want %s", tc.name, f.State, tc.want)
			}
			return nil
		})
	}
	view(t, s, func(tx *Tx) error {
		f, err := tx.FailureByChange(testSync, "c1")
		if err != nil {
			return err
		}
		if f.ID != id || f.Attempts != 3 || f.ErrorText != "again" || !f.FirstSeenAt.Equal(t0) ||
			!f.LastSeenAt.Equal(t0.Add(time.Minute)) {
			t.Errorf("record: got %+v", f)
		}
		if _, err := tx.FailureGet(id + 100); !errors.Is(err, ErrNotFound) {
			t.Errorf("get unknown: got %v, want ErrNotFound", err)
		}
		return nil
	})
}

func TestFailureList(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	update(t, s, func(tx *Tx) error {
		for _, c := range []string{"a", "b", "c"} {
			if _, err := tx.FailureRecord(Failure{SyncID: testSync, ChangeID: c}); err != nil {
				return err
			}
		}
		// Without a change id every record is new.
		for range 2 {
			if _, err := tx.FailureRecord(Failure{SyncID: testSync, Kind: "resend-pruned"}); err != nil {
				return err
			}
		}
		f, err := tx.FailureByChange(testSync, "b")
		if err != nil {
			return err
		}
		return tx.FailureSkip(f.ID)
	})
	view(t, s, func(tx *Tx) error {
		all, err := tx.FailureList(testSync, 0)
		if err != nil {
			return err
		}
		if len(all) != 5 {
			t.Errorf("all: got %d, want 5", len(all))
		}
		open, err := tx.FailureList(testSync, 0, FailureOpen, FailureRetrying)
		if err != nil {
			return err
		}
		if len(open) != 4 || open[0].ChangeID != "a" || open[1].ChangeID != "c" {
			t.Errorf("open: got %+v", open)
		}
		n, err := tx.FailureCount(testSync, FailureSkipped)
		if err != nil {
			return err
		}
		if n != 1 {
			t.Errorf("skipped count: got %d, want 1", n)
		}
		return nil
	})
}
