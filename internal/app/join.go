package app

import (
	"errors"
	"fmt"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/handshake"
	"github.com/jirabridge/jirabridge/internal/store"
)

func cmdJoin(env Env, args []string) int {
	fs := newFlagSet(env, "join", "join HANDSHAKE\n\n"+
		"Joins the sync of the master's handshake file as the slave: stores the\n"+
		"master's public keys, generates this bridge's keys and queues the Handshake\n"+
		"message, which 'jirabridge run' sends.")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(env.Stderr, "join: give the handshake file the master's administrator handed you: jirabridge join FILE")
		return ExitUsage
	}
	f, err := handshake.ReadFile(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(env.Stderr, "join: %v\n", err)
		return ExitUsage
	}
	s, code := loadSetup(env, "join")
	if s == nil {
		return code
	}
	defer s.Close()
	var sy store.Sync
	err = s.st.Update(ctxOf(env), func(tx *store.Tx) error {
		var err error
		sy, err = handshake.Join(tx, f, handshake.JoinParams{
			Name: s.def.Name, ProjectKey: s.def.Project, SyncUser: s.cfg.Jira.User, Transport: string(s.cfg.Transport),
		})
		return err
	})
	if err != nil {
		fmt.Fprintf(env.Stderr, "join: %v\n", err)
		if errors.Is(err, handshake.ErrAlreadyJoined) || errors.Is(err, handshake.ErrExists) {
			return ExitUsage
		}
		return ExitFailure
	}
	fmt.Fprintf(env.Stdout, "Joined sync %q (id %s) as the slave, project %s, sync user %s.\n", sy.Name, sy.ID, sy.ProjectKey, sy.SyncUser)
	if f.MasterAddress != "" && s.cfg.Transport == config.TransportMail && s.cfg.SMTP.PeerAddress != f.MasterAddress {
		fmt.Fprintf(env.Stdout, "Warning: the master's mailbox is %s but JIRABRIDGE_SMTP_PEER_ADDRESS is %q: set it to %s.\n",
			f.MasterAddress, s.cfg.SMTP.PeerAddress, f.MasterAddress)
	}
	if f.FileDropNote != "" {
		fmt.Fprintf(env.Stdout, "File drop: %s.\n", f.FileDropNote)
	}
	fmt.Fprintln(env.Stdout, "The Handshake message is queued. Next:")
	fmt.Fprintln(env.Stdout, "  1. Run this bridge (jirabridge run) so it sends it; the master answers, and 'jirabridge status' shows STOPPED.")
	fmt.Fprintln(env.Stdout, "  2. Delete the handshake file: its secret is spent.")
	fmt.Fprintln(env.Stdout, "  3. When the master publishes, map every alias 'jirabridge status' lists in your sync definition.")
	return ExitOK
}
