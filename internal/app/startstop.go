package app

import (
	"errors"
	"fmt"

	"github.com/jirabridge/jirabridge/internal/handshake"
	"github.com/jirabridge/jirabridge/internal/store"
)

func cmdStart(env Env, args []string) int {
	fs := newFlagSet(env, "start", "start\n\n"+
		"Starts syncing (state RUNNING): the running daemon picks it up at once.\n"+
		"Also resumes a PAUSED sync once its cause is fixed.")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	s, code := loadSetup(env, "start")
	if s == nil {
		return code
	}
	defer s.Close()
	sy, err := s.thisSync(ctxOf(env))
	if err != nil {
		fmt.Fprintf(env.Stderr, "start: %v\n", err)
		return ExitUsage
	}
	var st store.SyncState
	err = s.st.Update(ctxOf(env), func(tx *store.Tx) error {
		var err error
		st, err = handshake.Start(tx, sy.ID, s.fixed(), handshake.AliasesOf(s.def))
		return err
	})
	if err != nil {
		fmt.Fprintf(env.Stderr, "start: %v\n", err)
		if errors.Is(err, handshake.ErrState) || errors.Is(err, handshake.ErrFixed) {
			return ExitUsage
		}
		return ExitFailure
	}
	if st == store.StateWaitingForSlave {
		fmt.Fprintf(env.Stdout, "Sync %q is WAITING FOR SLAVE; it starts by itself once the slave adopts the configuration.\n", sy.Name)
		return ExitOK
	}
	fmt.Fprintf(env.Stdout, "Sync %q is %s.\n", sy.Name, st)
	return ExitOK
}

func cmdStop(env Env, args []string) int {
	fs := newFlagSet(env, "stop", "stop\n\n"+
		"Stops syncing (state STOPPED): no more detection or replay; the link still\n"+
		"carries acks, heartbeats and set-up messages.")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	s, code := loadSetup(env, "stop")
	if s == nil {
		return code
	}
	defer s.Close()
	sy, err := s.thisSync(ctxOf(env))
	if err != nil {
		fmt.Fprintf(env.Stderr, "stop: %v\n", err)
		return ExitUsage
	}
	var st store.SyncState
	err = s.st.Update(ctxOf(env), func(tx *store.Tx) error {
		var err error
		st, err = handshake.Stop(tx, sy.ID)
		return err
	})
	if err != nil {
		fmt.Fprintf(env.Stderr, "stop: %v\n", err)
		if errors.Is(err, handshake.ErrState) {
			return ExitUsage
		}
		return ExitFailure
	}
	if st != store.StateStopped {
		fmt.Fprintf(env.Stdout, "Sync %q stays %s and is STOPPED afterwards.\n", sy.Name, st)
		return ExitOK
	}
	fmt.Fprintf(env.Stdout, "Sync %q is STOPPED.\n", sy.Name)
	return ExitOK
}
