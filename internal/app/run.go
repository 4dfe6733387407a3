package app

import (
	"fmt"
	"time"
)

func cmdRun(env Env, args []string) int {
	fs := newFlagSet(env, "run", "run [--once [--idle D]]\n\n"+
		"Runs the bridge: sends and receives envelopes, carries the set-up messages,\n"+
		"syncs while the sync is RUNNING, and serves /healthz, /readyz, /metrics and\n"+
		"/status on JIRABRIDGE_HTTP_LISTEN, until SIGTERM or SIGINT (then it finishes\n"+
		"the current Jira write and mail and exits 0).")
	once := fs.Bool("once", false, "send what is queued, read what has arrived, then exit (a cron job beside a file drop)")
	idle := fs.Duration("idle", 2*time.Second, "with --once: stop reading after the transport was idle this long")
	if ok, code := parseFlagsOnly(env, fs, args); !ok {
		return code
	}
	ctx, stop := runContext(env)
	defer stop()
	s, code := loadSetup(env, "run")
	if s == nil {
		return code
	}
	defer s.Close()
	d, err := newDaemon(ctx, s, daemonOptions{Once: *once, Idle: *idle})
	if err != nil {
		fmt.Fprintf(env.Stderr, "run: %v\n", err)
		return ExitUsage
	}
	defer d.Close()
	if err := d.run(ctx); err != nil {
		fmt.Fprintf(env.Stderr, "run: %v\n", err)
		return ExitFailure
	}
	return ExitOK
}
