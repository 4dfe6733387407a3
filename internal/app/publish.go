package app

import (
	"errors"
	"fmt"

	"github.com/jirabridge/jirabridge/internal/handshake"
	"github.com/jirabridge/jirabridge/internal/store"
)

func cmdPublish(env Env, args []string) int {
	fs := newFlagSet(env, "publish", "publish [--note TEXT]\n\n"+
		"Master only: sends the aliases of the sync definition (issue types, fields and\n"+
		"values, statuses, link types, features and directions) to the slave. The master\n"+
		"shows WAITING FOR SLAVE until the slave has mapped them all and acked.")
	note := fs.String("note", "", "a note for the slave's administrator, shown in their status")
	if ok, code := parseFlagsOnly(env, fs, args); !ok {
		return code
	}
	s, code := loadSetup(env, "publish")
	if s == nil {
		return code
	}
	defer s.Close()
	sy, err := s.thisSync(ctxOf(env))
	if err != nil {
		fmt.Fprintf(env.Stderr, "publish: %v\n", err)
		return ExitUsage
	}
	if err := handshake.CheckFixed(sy, s.fixed()); err != nil {
		fmt.Fprintf(env.Stderr, "publish: %v\n", err)
		return ExitUsage
	}
	cfg := handshake.AliasesOf(s.def)
	var ver int
	err = s.st.Update(ctxOf(env), func(tx *store.Tx) error {
		var err error
		ver, err = handshake.Publish(tx, sy.ID, cfg, *note)
		return err
	})
	if err != nil {
		fmt.Fprintf(env.Stderr, "publish: %v\n", err)
		if errors.Is(err, handshake.ErrState) {
			return ExitUsage
		}
		return ExitFailure
	}
	fmt.Fprintf(env.Stdout, "Published configuration %d of sync %q: %d issue types, %d statuses, %d fields, %d link types.\n",
		ver, sy.Name, len(cfg.IssueTypes), len(cfg.Statuses), len(cfg.Fields), len(cfg.LinkTypes))
	fmt.Fprintln(env.Stdout, "State: WAITING FOR SLAVE until the slave adopts it ('jirabridge run' carries the message).")
	return ExitOK
}
