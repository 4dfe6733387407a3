// Package mailstack reads the settings of the real Postfix + Dovecot stack
// that scripts/mailstack.sh starts, so that tests can reach it. Tests that
// need the stack call Require, which skips them with a message saying how to
// run them when the stack is not running.
package mailstack

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// EnvVar names the environment variable that holds the path of the env file
// written by scripts/mailstack.sh (scripts/test.sh sets it).
const EnvVar = "JIRABRIDGE_TEST_MAILSTACK"

// SkipMessage is what tests print when the stack is not available.
const SkipMessage = "real mail stack not running: set " + EnvVar + " or run make test as root"

// Stack is a running Postfix + Dovecot stack on loopback.
type Stack struct {
	Dir    string // the directory given to mailstack.sh
	Script string // absolute path of mailstack.sh
	Host   string // always 127.0.0.1
	Domain string // the only domain the stack accepts mail for

	SMTPPort       int // plain SMTP (25-style), STARTTLS offered
	SubmissionPort int // STARTTLS required (587-style)
	SMTPSPort      int // implicit TLS (465-style)
	IMAPPort       int // plain IMAP, STARTTLS offered
	IMAPSPort      int // implicit TLS IMAP (993-style)

	CAFile string            // PEM file of the test CA that signed both servers' certificate
	Users  map[string]string // user name -> password
}

// Load parses the env file written by scripts/mailstack.sh.
func Load(path string) (*Stack, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read mail stack env file: %w", err)
	}
	kv := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("mail stack env file %s: line %q is not KEY=VALUE", path, line)
		}
		kv[k] = strings.Trim(v, `"'`)
	}
	s := &Stack{
		Dir:    kv["MAILSTACK_DIR"],
		Script: kv["MAILSTACK_SCRIPT"],
		Host:   kv["MAILSTACK_HOST"],
		Domain: kv["MAILSTACK_DOMAIN"],
		CAFile: kv["MAILSTACK_CA_FILE"],
		Users:  map[string]string{},
	}
	var errs []error
	port := func(key string) int {
		p, err := strconv.Atoi(kv[key])
		if err != nil || p <= 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("mail stack env file %s: %s=%q is not a port", path, key, kv[key]))
		}
		return p
	}
	s.SMTPPort = port("MAILSTACK_SMTP_PORT")
	s.SubmissionPort = port("MAILSTACK_SUBMISSION_PORT")
	s.SMTPSPort = port("MAILSTACK_SMTPS_PORT")
	s.IMAPPort = port("MAILSTACK_IMAP_PORT")
	s.IMAPSPort = port("MAILSTACK_IMAPS_PORT")
	for _, u := range strings.Fields(kv["MAILSTACK_USERS"]) {
		key := "MAILSTACK_PASS_" + strings.ToUpper(strings.ReplaceAll(u, "-", "_"))
		if kv[key] == "" {
			errs = append(errs, fmt.Errorf("mail stack env file %s: %s is missing", path, key))
		}
		s.Users[u] = kv[key]
	}
	if s.Host == "" || s.Domain == "" || s.CAFile == "" || len(s.Users) == 0 {
		errs = append(errs, fmt.Errorf("mail stack env file %s: MAILSTACK_HOST, MAILSTACK_DOMAIN, MAILSTACK_CA_FILE and MAILSTACK_USERS are required", path))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// FromEnv loads the stack named by EnvVar. ok is false when EnvVar is unset.
func FromEnv() (s *Stack, ok bool, err error) {
	path := os.Getenv(EnvVar)
	if path == "" {
		return nil, false, nil
	}
	s, err = Load(path)
	return s, true, err
}

// Require returns the running stack, skips the test when EnvVar is unset,
// and fails it when the env file is unusable.
func Require(tb testing.TB) *Stack {
	tb.Helper()
	s, ok, err := FromEnv()
	if !ok {
		tb.Skip(SkipMessage)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// Address returns user@domain, or user+detail@domain when detail is set:
// the stack delivers the latter into the folder named detail, which gives
// each test its own mailbox.
func (s *Stack) Address(user, detail string) string {
	if detail == "" {
		return user + "@" + s.Domain
	}
	return user + "+" + detail + "@" + s.Domain
}

// Password returns the password of user.
func (s *Stack) Password(user string) string { return s.Users[user] }

// RestartIMAP stops Dovecot and starts it again (every IMAP session drops),
// through mailstack.sh restart-imap.
func (s *Stack) RestartIMAP(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "bash", s.Script, "restart-imap", s.Dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("restart dovecot with %s: %w: %s", s.Script, err, out)
	}
	return nil
}

// FlushQueue asks Postfix to deliver its queue now (mailstack.sh flush).
// Mail deferred while Dovecot was away otherwise waits for Postfix's retry
// timers, which after a restart can take a minute or more.
func (s *Stack) FlushQueue(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "bash", s.Script, "flush", s.Dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("flush postfix queue with %s: %w: %s", s.Script, err, out)
	}
	return nil
}
