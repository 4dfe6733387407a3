package app

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/perms"
)

// cmdCheck asks the local Jira whether the sync user holds every permission
// the sync definition's enabled features need, and prints the table. Exit 0
// when all are present, 1 when some are missing or Jira cannot be asked, 2
// for a configuration problem. (Kept small: credential checks belong to a
// separate command.)
func cmdCheck(env Env, args []string) int {
	fs := newFlagSet(env, "check", "check\n\n"+
		"Asks the local Jira (mypermissions) whether the sync user has every\n"+
		"permission the enabled features need and prints feature, permission,\n"+
		"present or missing, and what to do. Exit status 1 when any is missing.")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	// Only the Jira settings and the sync file matter here, so a bridge
	// whose mail settings are not done yet can be checked already.
	cfg, err := config.Load(env.Getenv)
	if cfg == nil || cfg.Jira.BaseURL == "" || cfg.Jira.User == "" {
		fmt.Fprintf(env.Stderr, "check: JIRABRIDGE_JIRA_BASE_URL and JIRABRIDGE_JIRA_USER are needed: %v\n", err)
		return ExitUsage
	}
	if cfg.SyncFile == "" {
		fmt.Fprintln(env.Stderr, "check: JIRABRIDGE_SYNC_FILE is not set; the check needs the sync definition's project and features")
		return ExitUsage
	}
	def, err := config.LoadSyncFile(cfg.SyncFile)
	if err != nil {
		fmt.Fprintf(env.Stderr, "check: %v\n", err)
		return ExitUsage
	}
	jc, err := jiraClient(cfg.Jira)
	if err != nil {
		fmt.Fprintf(env.Stderr, "check: %v\n", err)
		return ExitUsage
	}
	rows, err := perms.Check(context.Background(), jc, def.Project, perms.Features(def))
	if err != nil {
		fmt.Fprintf(env.Stderr, "check: %v\n", err)
		return ExitFailure
	}
	if err := perms.Print(env.Stdout, rows); err != nil {
		fmt.Fprintf(env.Stderr, "check: %v\n", err)
		return ExitFailure
	}
	if m := perms.Missing(rows); len(m) > 0 {
		fmt.Fprintf(env.Stdout, "\n%d permission(s) missing: the bridge will not start %v until they are granted.\n", len(m), perms.Blocked(rows))
		return ExitFailure
	}
	return ExitOK
}

// jiraClient builds the sync user's Jira client from the settings.
func jiraClient(j config.Jira) (*jira.Client, error) {
	u, err := url.Parse(j.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("JIRABRIDGE_JIRA_BASE_URL: %w", err)
	}
	tc, err := j.TLSConfig(u.Hostname())
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	o := jira.Options{BaseURL: j.BaseURL, Username: j.User, Transport: tr, Timeout: j.Timeout}
	if j.AuthMode == config.AuthBearer {
		o.Token = j.Token.Reveal()
	} else {
		o.Password = j.Password.Reveal()
	}
	return jira.New(o)
}
