// Package app builds every part of a bridge from its configuration and runs
// the command line. cmd/jirabridge is a thin wrapper around Main, so tests can
// drive the exact commands an operator types.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// Exit statuses, as the README documents them.
const (
	ExitOK      = 0
	ExitFailure = 1 // runtime failure
	ExitUsage   = 2 // usage or configuration error
)

// Version is set at build time with -ldflags "-X .../internal/app.Version=...".
var Version = "dev"

// Env is what a command may touch of the outside world. Tests pass their own.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads process settings; nil means no variables are set.
	Getenv func(string) string
	// Context ends long-running commands (run, demo) when done; nil means
	// they stop on SIGINT or SIGTERM. Tests cancel it instead of signalling.
	Context context.Context
}

// command is one subcommand. run returns the exit status.
type command struct {
	name    string
	summary string
	run     func(env Env, args []string) int
}

// commands lists every subcommand; explicit, no init-time registry.
func commands() []command {
	return []command{
		{"version", "print the version", cmdVersion},
		{"config", "inspect process settings (config check)", cmdConfig},
		{"init", "create the sync as the master and write the handshake file", cmdInit},
		{"join", "join a sync as the slave with the master's handshake file", cmdJoin},
		{"publish", "master: send the sync definition's aliases to the slave", cmdPublish},
		{"start", "start syncing (RUNNING)", cmdStart},
		{"stop", "stop syncing (STOPPED)", cmdStop},
		{"status", "show the sync's state, set-up progress and link figures", cmdStatus},
		{"run", "run the bridge daemon until SIGTERM", cmdRun},
		{"demo", "run the whole system on this machine: two Jira emulators, mail, two bridges", cmdDemo},
		{"messages", "list, show, retry or skip parked changes", cmdMessages},
		{"resync", "send the current state of issues to the peer again", cmdResync},
		{"check", "confirm the Jira credentials (one call) and the sync user's permissions for the enabled features", cmdCheck},
		{"bench", "measure two bridges in this process: throughput, latency, mails, bytes, Jira calls, memory", cmdBench},
	}
}

// Main runs the command line and returns the process exit status.
func Main(args []string, env Env) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(env.Stdout)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(env, args[1:])
		}
	}
	fmt.Fprintf(env.Stderr, "jirabridge: unknown command %q; run 'jirabridge help' for the list\n", args[0])
	return ExitUsage
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: jirabridge COMMAND [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	cs := commands()
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'jirabridge COMMAND --help' for a command's flags.")
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(env Env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: jirabridge %s\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; the second result is the exit status to return
// when parsing did not succeed (or --help was asked for).
func parseFlags(fs *flag.FlagSet, args []string) (bool, int) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false, ExitOK
		}
		return false, ExitUsage
	}
	return true, ExitOK
}

// parseFlagsOnly is parseFlags for a command that takes no arguments
// besides its flags: a stray one (often a flag value that lost its quotes)
// is a usage error, not silently ignored.
func parseFlagsOnly(env Env, fs *flag.FlagSet, args []string) (bool, int) {
	if ok, code := parseFlags(fs, args); !ok {
		return false, code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return false, ExitUsage
	}
	return true, ExitOK
}

// runContext is env.Context or, in the real process (no Context), one
// that ends on SIGTERM or SIGINT so long-running commands stop cleanly.
func runContext(env Env) (context.Context, context.CancelFunc) {
	if env.Context != nil {
		return env.Context, func() {}
	}
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}

func cmdVersion(env Env, args []string) int {
	fs := newFlagSet(env, "version", "version")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	fmt.Fprintf(env.Stdout, "jirabridge %s\n", Version)
	return ExitOK
}

func cmdConfig(env Env, args []string) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(env.Stderr, "Usage: jirabridge config check")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return ExitOK
		}
		return ExitUsage
	}
	switch args[0] {
	case "check":
		return cmdConfigCheck(env, args[1:])
	default:
		fmt.Fprintf(env.Stderr, "jirabridge config: unknown subcommand %q (want: check)\n", args[0])
		return ExitUsage
	}
}
