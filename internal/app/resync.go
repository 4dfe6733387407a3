package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jirabridge/jirabridge/internal/engine"
	"github.com/jirabridge/jirabridge/internal/store"
)

const resyncUsage = `resync [--sync ID] [--jql 'QUERY']

Sends the current state of the sync's issues that match QUERY (default: every
issue of the sync) to the peer again; the peer applies only what differs.
The command records the request in the bridge's database and returns; the
running bridge carries it out at its next poll (so the command needs no Jira
credentials and never polls Jira beside the daemon). A request made while one
is pending widens it to both queries. The database is found through
JIRABRIDGE_DATA_DIR (default ./data).`

// cmdResync is `jirabridge resync`: it records a resync request for the
// running bridge (see engine.RequestResync).
func cmdResync(env Env, args []string) int {
	fs := newFlagSet(env, "resync", resyncUsage)
	jql := fs.String("jql", "", "JQL selecting the issues to send again, within the sync's own JQL (default: all)")
	syncID := fs.String("sync", "", "the sync (needed only when the database holds several)")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "resync: unexpected argument %q (quote the JQL: --jql 'key = ABC-1')\n", fs.Arg(0))
		return ExitUsage
	}
	ctx := context.Background()
	st, err := openStore(ctx, env)
	if err != nil {
		fmt.Fprintf(env.Stderr, "resync: %v\n", err)
		return ExitFailure
	}
	defer st.Close()
	id := *syncID
	if id == "" {
		var syncs []store.Sync
		if err := st.View(ctx, func(tx *store.Tx) error {
			var err error
			syncs, err = tx.SyncList()
			return err
		}); err != nil {
			fmt.Fprintf(env.Stderr, "resync: %v\n", err)
			return ExitFailure
		}
		switch len(syncs) {
		case 0:
			fmt.Fprintln(env.Stderr, "resync: this database holds no sync")
			return ExitFailure
		case 1:
			id = syncs[0].ID
		default:
			fmt.Fprintf(env.Stderr, "resync: the database holds %d syncs; name one with --sync\n", len(syncs))
			return ExitUsage
		}
	}
	req, err := engine.RequestResync(ctx, st, id, *jql)
	if errors.Is(err, store.ErrNotFound) {
		fmt.Fprintf(env.Stderr, "resync: no sync %q in this database\n", id)
		return ExitFailure
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "resync: %v\n", err)
		return ExitFailure
	}
	what := "every issue of the sync"
	if req.JQL != "" {
		what = "issues matching " + req.JQL
	}
	fmt.Fprintf(env.Stdout, "resync of sync %s requested at %s: %s; the running bridge sends them at its next poll\n",
		id, req.RequestedAt.UTC().Format(time.RFC3339), what)
	return ExitOK
}
