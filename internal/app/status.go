package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/jirabridge/jirabridge/internal/handshake"
	"github.com/jirabridge/jirabridge/internal/store"
)

// statusReport is what `jirabridge status` prints and the daemon's /status
// serves: the sync's state with its reason, the set-up progress, the link
// figures and the counts an operator watches.
type statusReport struct {
	Name      string          `json:"name"`
	ID        string          `json:"id"`
	Role      store.Role      `json:"role"`
	State     store.SyncState `json:"state"`
	Reason    string          `json:"reason,omitempty"`
	Project   string          `json:"project"`
	SyncUser  string          `json:"sync_user"`
	Transport string          `json:"transport"`
	SelfNode  string          `json:"self_node"`
	PeerNode  string          `json:"peer_node,omitempty"`

	ConfigVersion  int      `json:"config_version"`  // published (master) or received (slave)
	AdoptedVersion int      `json:"adopted_version"` // acked by the slave
	ConfigNote     string   `json:"config_note,omitempty"`
	Missing        []string `json:"missing,omitempty"`  // slave: master aliases not mapped
	Widening       []string `json:"widening,omitempty"` // slave: beyond the master's configuration

	Link linkReport `json:"link"`

	Pairs       int `json:"synced_issues"`
	Pending     int `json:"pending_changes"`
	Parked      int `json:"parked_changes"`
	Conflicts   int `json:"conflicts"`
	Quarantined int `json:"quarantined"`

	Skipped skippedReport `json:"skipped"`
}

type linkReport struct {
	LastHeard        *time.Time `json:"last_heard,omitempty"`
	OutboxDepth      int        `json:"outbox_depth"`
	Unsent           int        `json:"unsent"`
	HighestSeq       uint64     `json:"highest_seq"`
	HighestSent      uint64     `json:"highest_sent"`
	HighestAcked     uint64     `json:"highest_acked"`
	OldestUnackedAge string     `json:"oldest_unacked_age,omitempty"`
	AckSent          uint64     `json:"ack_sent"`
	Received         uint64     `json:"received_contiguous"`
	HighestReceived  uint64     `json:"highest_received"`
	Gaps             []string   `json:"gaps,omitempty"`
}

// gatherStatus reads everything in one read transaction, so it never waits
// for the daemon.
func gatherStatus(ctx context.Context, st *store.Store, syncID string, local *handshake.Config) (statusReport, error) {
	var r statusReport
	err := st.View(ctx, func(tx *store.Tx) error {
		s, err := tx.SyncGet(syncID)
		if err != nil {
			return err
		}
		r = statusReport{Name: s.Name, ID: s.ID, Role: s.Role, State: s.State, Reason: s.StateReason,
			Project: s.ProjectKey, SyncUser: s.SyncUser, Transport: s.Transport, SelfNode: s.SelfNode, PeerNode: s.PeerNode}
		cfg, err := handshake.StoredConfig(tx, syncID)
		if err != nil {
			return err
		}
		if cfg != nil {
			r.ConfigVersion, r.ConfigNote = cfg.Version, cfg.Note
			if s.Role == store.RoleSlave && local != nil {
				r.Missing, r.Widening = handshake.Compare(cfg, local)
			}
		}
		if r.AdoptedVersion, err = handshake.AdoptedVersion(tx, syncID); err != nil {
			return err
		}
		ls, err := tx.LinkStatus(syncID)
		if err != nil {
			return err
		}
		r.Link = linkReport{OutboxDepth: ls.Outbox.Depth, Unsent: ls.Outbox.Unsent, HighestSeq: ls.Outbox.HighestSeq,
			HighestSent: ls.Outbox.HighestSent, HighestAcked: ls.Outbox.HighestAcked, AckSent: ls.AckSent}
		if !ls.LastHeardAt.IsZero() {
			t := ls.LastHeardAt.UTC()
			r.Link.LastHeard = &t
		}
		if age := ls.Outbox.OldestUnackedAge(tx.Now()); age > 0 {
			r.Link.OldestUnackedAge = age.Round(time.Second).String()
		}
		if in, ok := ls.Inbound[s.PeerNode]; ok {
			r.Link.Received, r.Link.HighestReceived = in.Cursor.Contiguous, in.Cursor.HighestSeen
			for _, g := range in.Gaps {
				r.Link.Gaps = append(r.Link.Gaps, fmt.Sprintf("%d-%d", g.From, g.To))
			}
		}
		after := ""
		for {
			ps, err := tx.PairList(syncID, after, 1000)
			if err != nil {
				return err
			}
			r.Pairs += len(ps)
			if len(ps) < 1000 {
				break
			}
			after = ps[len(ps)-1].LocalID
		}
		ps, err := tx.PendingStats(syncID)
		if err != nil {
			return err
		}
		r.Pending = ps.Count
		if r.Parked, err = tx.FailureCount(syncID, store.FailureOpen, store.FailureRetrying); err != nil {
			return err
		}
		cs, err := tx.ConflictList(syncID, 100000)
		if err != nil {
			return err
		}
		r.Conflicts = len(cs)
		qs, err := tx.QuarantineList(100000)
		if err != nil {
			return err
		}
		for _, q := range qs {
			if q.SyncID == syncID || q.SyncID == "" {
				r.Quarantined++
			}
		}
		r.Skipped, err = gatherSkipped(tx, syncID, statusSkippedNewest)
		return err
	})
	return r, err
}

func cmdStatus(env Env, args []string) int {
	fs := newFlagSet(env, "status", "status [--json] [--skipped]\n\n"+
		"Shows the sync's state and reason, the set-up progress (for a slave in\n"+
		"UPDATE REQUIRED: exactly the aliases still to map), the link figures, the\n"+
		"counts of synced issues, parked changes and conflicts, and what the bridge\n"+
		"skipped on purpose (the newest entries; --skipped lists all).")
	asJSON := fs.Bool("json", false, "print one JSON object")
	allSkipped := fs.Bool("skipped", false, "list every item skipped on purpose, not only the newest")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	s, code := loadSetup(env, "status")
	if s == nil {
		return code
	}
	defer s.Close()
	sy, err := s.thisSync(ctxOf(env))
	if err != nil {
		fmt.Fprintf(env.Stderr, "status: %v\n", err)
		return ExitUsage
	}
	r, err := gatherStatus(ctxOf(env), s.st, sy.ID, handshake.AliasesOf(s.def))
	if err != nil {
		fmt.Fprintf(env.Stderr, "status: %v\n", err)
		return ExitFailure
	}
	if *allSkipped {
		if err := s.st.View(ctxOf(env), func(tx *store.Tx) error {
			var err error
			r.Skipped, err = gatherSkipped(tx, sy.ID, -1)
			return err
		}); err != nil {
			fmt.Fprintf(env.Stderr, "status: %v\n", err)
			return ExitFailure
		}
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return ExitFailure
		}
		return ExitOK
	}
	printStatus(env.Stdout, r)
	printSkipped(env.Stdout, r.Skipped, *allSkipped)
	if err := handshake.CheckFixed(sy, s.fixed()); err != nil {
		fmt.Fprintf(env.Stdout, "\nWARNING: %v\n", err)
	}
	return ExitOK
}

func printStatus(w io.Writer, r statusReport) {
	state := string(r.State)
	if r.Reason != "" {
		state += " (" + r.Reason + ")"
	}
	fmt.Fprintf(w, "Sync %s (%s), %s\n", r.Name, r.ID, r.Role)
	fmt.Fprintf(w, "  state:          %s\n", state)
	fmt.Fprintf(w, "  project:        %s, sync user %s, transport %s\n", r.Project, r.SyncUser, r.Transport)
	peer := r.PeerNode
	if peer == "" {
		peer = "(none yet: waiting for the slave's join)"
	}
	fmt.Fprintf(w, "  nodes:          self %s, peer %s\n", r.SelfNode, peer)
	switch {
	case r.ConfigVersion == 0 && r.Role == store.RoleMaster:
		fmt.Fprintln(w, "  configuration:  never published (run jirabridge publish)")
	case r.ConfigVersion == 0:
		fmt.Fprintln(w, "  configuration:  none received from the master yet")
	default:
		fmt.Fprintf(w, "  configuration:  version %d, adopted %d", r.ConfigVersion, r.AdoptedVersion)
		if r.ConfigNote != "" {
			fmt.Fprintf(w, ", note: %s", r.ConfigNote)
		}
		fmt.Fprintln(w)
	}
	if len(r.Missing) > 0 {
		fmt.Fprintf(w, "  not mapped (%d): map these aliases of the master in your sync definition, then run jirabridge start:\n", len(r.Missing))
		for _, m := range r.Missing {
			fmt.Fprintf(w, "    - %s\n", m)
		}
	}
	if len(r.Widening) > 0 {
		fmt.Fprintf(w, "  beyond the master's configuration (%d): remove or narrow these:\n", len(r.Widening))
		for _, m := range r.Widening {
			fmt.Fprintf(w, "    - %s\n", m)
		}
	}
	l := r.Link
	heard := "never"
	if l.LastHeard != nil {
		heard = l.LastHeard.Format(time.RFC3339)
	}
	fmt.Fprintf(w, "  link:           last heard from the peer %s\n", heard)
	fmt.Fprintf(w, "                  sent: highest seq %d, sent %d, acked %d, unacked %d (unsent %d)", l.HighestSeq, l.HighestSent, l.HighestAcked, l.OutboxDepth, l.Unsent)
	if l.OldestUnackedAge != "" {
		fmt.Fprintf(w, ", oldest unacked %s", l.OldestUnackedAge)
	}
	fmt.Fprintln(w)
	gaps := "none"
	if len(l.Gaps) > 0 {
		sort.Strings(l.Gaps)
		gaps = strings.Join(l.Gaps, ", ")
	}
	fmt.Fprintf(w, "                  received: contiguous %d, highest %d, ack sent %d, open gaps %s\n", l.Received, l.HighestReceived, l.AckSent, gaps)
	fmt.Fprintf(w, "  issues:         %d synced, %d changes pending, %d parked, %d conflicts, %d quarantined messages\n",
		r.Pairs, r.Pending, r.Parked, r.Conflicts, r.Quarantined)
}
