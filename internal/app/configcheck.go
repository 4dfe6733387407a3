package app

import "fmt"

// cmdConfigCheck is replaced by the config package's check once it exists.
func cmdConfigCheck(env Env, args []string) int {
	fs := newFlagSet(env, "config check", "config check")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	fmt.Fprintln(env.Stderr, "config check: not built yet")
	return ExitFailure
}
