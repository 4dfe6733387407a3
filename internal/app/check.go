package app

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/metrics"
)

// newJiraClient builds the bridge's Jira client from the settings, with its
// TLS settings and metrics.
func newJiraClient(cfg *config.Config, m *metrics.Metrics) (*jira.Client, error) {
	u, err := url.Parse(cfg.Jira.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("JIRABRIDGE_JIRA_BASE_URL: %w", err)
	}
	tlsCfg, err := cfg.Jira.TLSConfig(u.Hostname())
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	o := jira.Options{
		BaseURL: cfg.Jira.BaseURL, Username: cfg.Jira.User, Transport: tr, Timeout: cfg.Jira.Timeout,
		OnCall: func(c jira.Call) { m.JiraCall(c.Endpoint, c.Status) },
	}
	if cfg.Jira.AuthMode == config.AuthBearer {
		o.Token = cfg.Jira.Token.Reveal()
	} else {
		o.Password = cfg.Jira.Password.Reveal()
	}
	return jira.New(o)
}

// permNeed is one Jira project permission the sync user needs, and for
// what.
type permNeed struct {
	key, why string
}

// neededPermissions lists what the sync user needs in the project for the
// features the sync definition turns on.
func neededPermissions(def *config.SyncDef) []permNeed {
	p := []permNeed{
		{"BROWSE_PROJECTS", "read issues (detection)"},
		{"CREATE_ISSUES", "create the partner's new issues"},
		{"EDIT_ISSUES", "write field changes"},
		{"TRANSITION_ISSUES", "move issues to the mapped status"},
	}
	for _, f := range def.Fields {
		if f.Local == "assignee" {
			p = append(p, permNeed{"ASSIGN_ISSUES", "set the assignee"})
		}
		if f.Local == "reporter" {
			p = append(p, permNeed{"MODIFY_REPORTER", "set the reporter"})
		}
	}
	if def.Comments.Enabled {
		p = append(p, permNeed{"ADD_COMMENTS", "add the partner's comments"},
			permNeed{"EDIT_OWN_COMMENTS", "apply edits of synced comments"},
			permNeed{"DELETE_OWN_COMMENTS", "apply deletions of synced comments"})
	}
	if def.Attachments.Enabled {
		p = append(p, permNeed{"CREATE_ATTACHMENTS", "add the partner's attachments"},
			permNeed{"DELETE_OWN_ATTACHMENTS", "apply deletions of synced attachments"})
	}
	if def.Watchers.Enabled {
		p = append(p, permNeed{"MANAGE_WATCHERS", "add and remove watchers"})
	}
	if def.Links.Enabled {
		p = append(p, permNeed{"LINK_ISSUES", "create and remove issue links"})
	}
	return p
}

func cmdCheck(env Env, args []string) int {
	fs := newFlagSet(env, "check", "check\n\n"+
		"Confirms the Jira credentials with ONE call (stopping at the first 401, so a\n"+
		"wrong password never adds up to Jira's CAPTCHA lock), then lists the project\n"+
		"permissions the sync user needs for the enabled features: present or missing.")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := config.Load(env.Getenv)
	if problems := splitProblems(err); len(problems) > 0 {
		fmt.Fprintln(env.Stderr, "check: the configuration has problems:")
		for _, p := range problems {
			fmt.Fprintf(env.Stderr, "  - %s\n", p)
		}
		return ExitUsage
	}
	var def *config.SyncDef
	if cfg.SyncFile != "" {
		if def, err = config.LoadSyncFile(cfg.SyncFile); err != nil {
			fmt.Fprintf(env.Stderr, "check: %v\n", err)
			return ExitUsage
		}
	}
	c, err := newJiraClient(cfg, nil)
	if err != nil {
		fmt.Fprintf(env.Stderr, "check: %v\n", err)
		return ExitUsage
	}
	ctx := ctxOf(env)
	me, err := c.Myself(ctx)
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
	if def == nil {
		fmt.Fprintln(env.Stdout, "No sync definition (JIRABRIDGE_SYNC_FILE): permissions not checked.")
		return ExitOK
	}
	return checkPermissions(ctx, env, c, cfg, def)
}

func checkPermissions(ctx context.Context, env Env, c *jira.Client, cfg *config.Config, def *config.SyncDef) int {
	need := neededPermissions(def)
	keys := make([]string, len(need))
	for i, n := range need {
		keys[i] = n.key
	}
	have, err := c.MyPermissions(ctx, def.Project, keys)
	if err != nil {
		fmt.Fprintf(env.Stderr, "check: read the permissions of %s in project %s: %v\n", cfg.Jira.User, def.Project, err)
		return ExitFailure
	}
	fmt.Fprintf(env.Stdout, "\nPermissions of %s in project %s:\n", cfg.Jira.User, def.Project)
	tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PERMISSION\tSTATE\tNEEDED TO")
	missing := 0
	for _, n := range need {
		state := "present"
		if !have[n.key] {
			state, missing = "MISSING", missing+1
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", n.key, state, n.why)
	}
	tw.Flush()
	if missing > 0 {
		fmt.Fprintf(env.Stdout, "\n%d permission(s) missing: a Jira administrator grants them to %s in the permission scheme of %s "+
			"(Project settings > Permissions); changes that need them would be parked until then.\n", missing, cfg.Jira.User, def.Project)
		return ExitFailure
	}
	fmt.Fprintln(env.Stdout, "\nAll permissions present.")
	return ExitOK
}
