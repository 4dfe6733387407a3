// Command jirabridge keeps Jira issues in sync between two Jira sites that
// cannot reach each other. The daemon and every subcommand live in
// internal/app so that tests can start whole bridges in-process.
package main

import (
	"os"

	"github.com/jirabridge/jirabridge/internal/app"
)

func main() {
	os.Exit(app.Main(os.Args[1:], app.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}))
}
