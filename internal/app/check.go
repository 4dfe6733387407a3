package app

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/metrics"
	"github.com/jirabridge/jirabridge/internal/perms"
)

// cmdCheck confirms the sync user's credentials with ONE call (Myself),
// stopping at the first refusal so that a wrong password never adds up to
// Jira's CAPTCHA lock, then asks Jira (mypermissions) whether the sync user
// has every permission the enabled features need and prints the table.
// Exit 0 when all is well, 1 when the credentials are refused, a permission
// is missing or Jira cannot be asked, 2 for a configuration problem.
func cmdCheck(env Env, args []string) int {
	fs := newFlagSet(env, "check", "check\n\n"+
		"Confirms the Jira credentials with one call (stopping at the first 401, so a\n"+
		"wrong password never adds up to Jira's CAPTCHA lock), then asks Jira\n"+
		"(mypermissions) whether the sync user has every permission the enabled\n"+
		"features need and prints feature, permission, present or missing, and what\n"+
		"to do. Exit status 1 when the credentials are refused or any is missing.")
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
	ctx := ctxOf(env)
	if code := checkCredentials(ctx, env, jc, cfg); code != ExitOK {
		return code
	}
	rows, err := perms.Check(ctx, jc, def.Project, perms.Features(def))
	if err != nil {
		fmt.Fprintf(env.Stderr, "check: %v\n", err)
		return ExitFailure
	}
	fmt.Fprintf(env.Stdout, "\nPermissions of %s in project %s:\n", cfg.Jira.User, def.Project)
	if err := perms.Print(env.Stdout, rows); err != nil {
		fmt.Fprintf(env.Stderr, "check: %v\n", err)
		return ExitFailure
	}
	if m := perms.Missing(rows); len(m) > 0 {
		var stop, back []string
		for _, f := range perms.Blocked(rows) {
			if perms.IsWriteBack(f) {
				back = append(back, f)
			} else {
				stop = append(stop, f)
			}
		}
		fmt.Fprintf(env.Stdout, "\n%d permission(s) missing.\n", len(m))
		if len(stop) > 0 {
			fmt.Fprintf(env.Stdout, "The bridge will not start %s until they are granted.\n", strings.Join(stop, ", "))
		}
		if len(back) > 0 {
			fmt.Fprintf(env.Stdout, "Comments and attachments still sync, but a partner's edits and deletions of the bridge's copies "+
				"cannot reach the originals here (%s): such changes park, naming the permission, until it is granted and they are retried.\n",
				strings.Join(back, ", "))
		}
		return ExitFailure
	}
	fmt.Fprintln(env.Stdout, "\nAll permissions present.")
	return ExitOK
}

// checkCredentials makes exactly one call. A 401 or 403 ends the check:
// a second call with the same wrong password would count twice towards
// Jira's failed-login limit.
func checkCredentials(ctx context.Context, env Env, jc *jira.Client, cfg *config.Config) int {
	me, err := jc.Myself(ctx)
	if err != nil {
		switch st := jira.StatusOf(err); st {
		case http.StatusUnauthorized, http.StatusForbidden:
			fmt.Fprintf(env.Stderr, "check: Jira refused the credentials of %s (HTTP %d). Stopped after this one call so that "+
				"Jira's failed-login count (which ends in a CAPTCHA lock) does not grow.\n"+
				"Fix JIRABRIDGE_JIRA_PASSWORD or JIRABRIDGE_JIRA_TOKEN (or their _FILE), then run jirabridge check again. "+
				"If Jira asks for a CAPTCHA, log in once as %s in a browser first.\n", cfg.Jira.User, st, cfg.Jira.User)
		default:
			fmt.Fprintf(env.Stderr, "check: cannot reach Jira at %s: %v\n", cfg.Jira.BaseURL, err)
		}
		return ExitFailure
	}
	if !strings.EqualFold(me.Name, cfg.Jira.User) {
		fmt.Fprintf(env.Stderr, "check: the credentials belong to %q, not to the sync user %q: the bridge would not recognise its own writes. "+
			"Use the sync user's password or token.\n", me.Name, cfg.Jira.User)
		return ExitFailure
	}
	fmt.Fprintf(env.Stdout, "Credentials OK: %s (%s) on %s.\n", me.Name, me.DisplayName, cfg.Jira.BaseURL)
	return ExitOK
}

// jiraClient builds the sync user's Jira client from the settings.
func jiraClient(j config.Jira) (*jira.Client, error) {
	return newJiraClientOpts(j, nil)
}

// newJiraClient builds the daemon's Jira client, with its calls counted in
// the metrics.
func newJiraClient(cfg *config.Config, m *metrics.Metrics) (*jira.Client, error) {
	return newJiraClientOpts(cfg.Jira, func(c jira.Call) { m.JiraCall(c.Endpoint, c.Status) })
}

func newJiraClientOpts(j config.Jira, onCall func(jira.Call)) (*jira.Client, error) {
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
	o := jira.Options{BaseURL: j.BaseURL, Username: j.User, Transport: tr, Timeout: j.Timeout, OnCall: onCall}
	if j.AuthMode == config.AuthBearer {
		o.Token = j.Token.Reveal()
	} else {
		o.Password = j.Password.Reveal()
	}
	return jira.New(o)
}
