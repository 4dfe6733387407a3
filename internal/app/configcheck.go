package app

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jirabridge/jirabridge/internal/config"
)

// cmdConfigCheck loads the process settings (through env.Getenv) and the
// sync definition file when JIRABRIDGE_SYNC_FILE names one, then prints the
// effective settings with secrets hidden (exit 0) or every problem found in
// both (exit 2).
func cmdConfigCheck(env Env, args []string) int {
	fs := newFlagSet(env, "config check", "config check\n\n"+
		"Reads the JIRABRIDGE_ variables and the sync definition file, and prints\n"+
		"the effective settings (secrets as <secret>) or every problem, exit status 2.")
	if ok, code := parseFlagsOnly(env, fs, args); !ok {
		return code
	}

	cfg, err := config.Load(env.Getenv)
	problems := splitProblems(err)

	var def *config.SyncDef
	if cfg != nil && cfg.SyncFile != "" {
		var serr error
		def, serr = config.LoadSyncFile(cfg.SyncFile)
		problems = append(problems, splitProblems(serr)...)
	}

	if len(problems) > 0 {
		noun := "problems"
		if len(problems) == 1 {
			noun = "problem"
		}
		fmt.Fprintf(env.Stderr, "config check: %d %s:\n", len(problems), noun)
		for _, p := range problems {
			fmt.Fprintf(env.Stderr, "  - %s\n", p)
		}
		fmt.Fprintln(env.Stderr, "See docs/configuration.md and docs/sync-definition.md.")
		return ExitUsage
	}

	fmt.Fprintln(env.Stdout, "Effective settings (secrets hidden):")
	if err := cfg.Print(env.Stdout); err != nil {
		fmt.Fprintf(env.Stderr, "config check: print settings: %v\n", err)
		return ExitFailure
	}
	if def != nil {
		fmt.Fprintf(env.Stdout, "\nSync definition %s: sync %q, project %s, %d issue types, %d statuses, %d fields\n",
			cfg.SyncFile, def.Name, def.Project, len(def.IssueTypes), len(def.Statuses), len(def.Fields))
		fmt.Fprintf(env.Stdout, "  users %s; comments %s; attachments %s; watchers %s; links %s; subtasks %s; deletes of partner issues: %s\n",
			def.Users.Mode, onOff(def.Comments.Enabled), onOff(def.Attachments.Enabled),
			onOff(def.Watchers.Enabled), onOff(def.Links.Enabled), onOff(def.Subtasks.Enabled), def.Deletes)
	} else {
		fmt.Fprintln(env.Stdout, "\nNo sync definition file (JIRABRIDGE_SYNC_FILE is not set).")
	}
	if w := cfg.Warnings(); len(w) > 0 {
		fmt.Fprintln(env.Stdout, "\nWarnings:")
		for _, s := range w {
			fmt.Fprintf(env.Stdout, "  - %s\n", s)
		}
	}
	fmt.Fprintln(env.Stdout, "\nOK")
	return ExitOK
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// splitProblems turns a joined error (errors.Join, or a multi-line
// *config.SyncError) into one line per problem.
func splitProblems(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, inner := range j.Unwrap() {
				walk(inner)
			}
			return
		}
		var se *config.SyncError
		if errors.As(e, &se) {
			out = append(out, strings.Split(se.Error(), "\n")...)
			return
		}
		out = append(out, e.Error())
	}
	walk(err)
	return out
}
