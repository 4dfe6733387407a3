package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/detect"
	"github.com/jirabridge/jirabridge/internal/replay"
	"github.com/jirabridge/jirabridge/internal/store"
)

const messagesUsage = `messages list [--all] [--sync ID] | show ID | retry ID... | skip ID...

Works on the changes that could not be applied here (DIR in: from the peer)
or not be sent (DIR out: a local change that cannot be mapped); each blocks
only its own issue. list shows the open and retrying ones (--all: every
state); show prints one with its full error and the change; retry puts it back
in its issue's lane after the cause is fixed (the running bridge applies it at
its next step); skip gives up on it and lets the issue's later changes go on.
The database is found through JIRABRIDGE_DATA_DIR (default ./data).`

// cmdMessages is `jirabridge messages`. Exit 2 on usage errors, 1 when
// the database or a message cannot be read or changed.
func cmdMessages(env Env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(env.Stderr, "Usage: jirabridge "+messagesUsage)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	switch args[0] {
	case "list":
		return messagesList(env, args[1:])
	case "show":
		return messagesShow(env, args[1:])
	case "retry":
		return messagesAct(env, "retry", args[1:], replay.Retry)
	case "skip":
		return messagesAct(env, "skip", args[1:], replay.Skip)
	default:
		fmt.Fprintf(env.Stderr, "jirabridge messages: unknown subcommand %q (want list, show, retry or skip)\n", args[0])
		return ExitUsage
	}
}

// dataDir is JIRABRIDGE_DATA_DIR with config's default. The messages and
// resync commands read only this setting, so they work on a bridge whose
// other settings (Jira, mail) are not in the operator's shell.
func dataDir(env Env) string {
	if env.Getenv != nil {
		if d := env.Getenv("JIRABRIDGE_DATA_DIR"); d != "" {
			return d
		}
	}
	return config.Defaults().DataDir
}

// openStore opens the bridge's existing database; it never creates one, so
// a wrong data directory is an error rather than an empty answer.
func openStore(ctx context.Context, env Env) (*store.Store, error) {
	path := filepath.Join(dataDir(env), store.FileName)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no jirabridge database at %s (set JIRABRIDGE_DATA_DIR to the bridge's data directory): %w", path, err)
	}
	st, err := store.Open(ctx, path, &store.Options{BusyTimeout: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return st, nil
}

func messagesList(env Env, args []string) int {
	fs := newFlagSet(env, "messages list", "messages list [--all] [--sync ID]")
	all := fs.Bool("all", false, "show messages in every state, not only open and retrying")
	syncID := fs.String("sync", "", "only this sync (default: every sync)")
	if ok, code := parseFlagsOnly(env, fs, args); !ok {
		return code
	}
	ctx := context.Background()
	st, err := openStore(ctx, env)
	if err != nil {
		fmt.Fprintf(env.Stderr, "messages list: %v\n", err)
		return ExitFailure
	}
	defer st.Close()
	states := []store.FailureState{store.FailureOpen, store.FailureRetrying}
	if *all {
		states = nil
	}
	var rows []store.Failure
	err = st.View(ctx, func(tx *store.Tx) error {
		syncs, err := tx.SyncList()
		if err != nil {
			return err
		}
		found := false
		for _, s := range syncs {
			if *syncID != "" && s.ID != *syncID {
				continue
			}
			found = true
			fs, err := tx.FailureList(s.ID, 10000, states...)
			if err != nil {
				return err
			}
			rows = append(rows, fs...)
		}
		if *syncID != "" && !found {
			return fmt.Errorf("no sync %q in this database", *syncID)
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(env.Stderr, "messages list: %v\n", err)
		return ExitFailure
	}
	if len(rows) == 0 {
		fmt.Fprintln(env.Stdout, "No parked messages.")
		return ExitOK
	}
	printFailures(env.Stdout, rows)
	return ExitOK
}

func printFailures(w io.Writer, rows []store.Failure) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSYNC\tDIR\tSTATE\tISSUE\tKIND\tATTEMPTS\tLAST SEEN\tERROR")
	for _, f := range rows {
		dir, kind := "in", f.Kind
		if k, ok := strings.CutPrefix(f.Kind, detect.FailureKindPrefix); ok {
			dir, kind = "out", k
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", f.ID, f.SyncID, dir, f.State, f.IssueKey, kind, f.Attempts,
			f.LastSeenAt.UTC().Format("2006-01-02 15:04:05"), oneLine(f.ErrorText, 80))
	}
	_ = tw.Flush()
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len([]rune(s)) > max {
		s = string([]rune(s)[:max-1]) + "…"
	}
	return s
}

// parseIDs reads message ids; a bad one is a usage error.
func parseIDs(env Env, cmd string, args []string) ([]int64, bool) {
	if len(args) == 0 {
		fmt.Fprintf(env.Stderr, "Usage: jirabridge messages %s ID...\n", cmd)
		return nil, false
	}
	var ids []int64
	for _, a := range args {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil || id <= 0 {
			fmt.Fprintf(env.Stderr, "messages %s: %q is not a message id (see 'jirabridge messages list')\n", cmd, a)
			return nil, false
		}
		ids = append(ids, id)
	}
	return ids, true
}

func messagesShow(env Env, args []string) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(env.Stderr, "Usage: jirabridge messages show ID")
		return ExitOK
	}
	ids, ok := parseIDs(env, "show", args)
	if !ok || len(ids) != 1 {
		if ok {
			fmt.Fprintln(env.Stderr, "Usage: jirabridge messages show ID")
		}
		return ExitUsage
	}
	ctx := context.Background()
	st, err := openStore(ctx, env)
	if err != nil {
		fmt.Fprintf(env.Stderr, "messages show: %v\n", err)
		return ExitFailure
	}
	defer st.Close()
	var f store.Failure
	var item *store.ReplayItem
	err = st.View(ctx, func(tx *store.Tx) error {
		var err error
		if f, err = tx.FailureGet(ids[0]); err != nil {
			return err
		}
		if f.ChangeID == "" {
			return nil
		}
		it, err := tx.ReplayGetByChange(f.SyncID, f.ChangeID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		item = &it
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		fmt.Fprintf(env.Stderr, "messages show: no message %d (see 'jirabridge messages list --all')\n", ids[0])
		return ExitFailure
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "messages show: %v\n", err)
		return ExitFailure
	}
	w := env.Stdout
	fmt.Fprintf(w, "Message:     %d\n", f.ID)
	fmt.Fprintf(w, "Sync:        %s\n", f.SyncID)
	fmt.Fprintf(w, "State:       %s\n", f.State)
	fmt.Fprintf(w, "Issue:       %s\n", f.IssueKey)
	fmt.Fprintf(w, "Kind:        %s\n", f.Kind)
	fmt.Fprintf(w, "Change:      %s\n", f.ChangeID)
	fmt.Fprintf(w, "Error class: %s\n", f.ErrorClass)
	fmt.Fprintf(w, "Attempts:    %d\n", f.Attempts)
	fmt.Fprintf(w, "First seen:  %s\n", f.FirstSeenAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "Last seen:   %s\n", f.LastSeenAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "Error:\n  %s\n", strings.ReplaceAll(f.ErrorText, "\n", "\n  "))
	if item != nil {
		fmt.Fprintf(w, "Lane state:  %s\n", item.State)
		var pretty any
		if json.Unmarshal(item.Change, &pretty) == nil {
			b, _ := json.MarshalIndent(pretty, "  ", "  ")
			fmt.Fprintf(w, "Change content:\n  %s\n", b)
		}
	}
	return ExitOK
}

func messagesAct(env Env, cmd string, args []string, act func(context.Context, *store.Store, int64) (store.Failure, error)) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintf(env.Stderr, "Usage: jirabridge messages %s ID...\n", cmd)
		return ExitOK
	}
	ids, ok := parseIDs(env, cmd, args)
	if !ok {
		return ExitUsage
	}
	ctx := context.Background()
	st, err := openStore(ctx, env)
	if err != nil {
		fmt.Fprintf(env.Stderr, "messages %s: %v\n", cmd, err)
		return ExitFailure
	}
	defer st.Close()
	code := ExitOK
	for _, id := range ids {
		f, err := act(ctx, st, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			fmt.Fprintf(env.Stderr, "messages %s: no message %d\n", cmd, id)
			code = ExitFailure
		case errors.Is(err, store.ErrBadTransition):
			fmt.Fprintf(env.Stderr, "messages %s: message %d is %s; only open or retrying messages can be changed\n", cmd, id, f.State)
			code = ExitFailure
		case err != nil:
			fmt.Fprintf(env.Stderr, "messages %s: %v\n", cmd, err)
			code = ExitFailure
		case cmd == "retry":
			fmt.Fprintf(env.Stdout, "message %d (%s, issue %s): retrying; the running bridge tries it again at its next step\n", id, f.Kind, f.IssueKey)
		default:
			fmt.Fprintf(env.Stdout, "message %d (%s, issue %s): skipped; the issue's later changes go on\n", id, f.Kind, f.IssueKey)
		}
	}
	return code
}
