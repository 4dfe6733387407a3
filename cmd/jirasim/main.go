// Command jirasim serves the Jira Data Center REST emulator from
// internal/jirasim, for trying a jirabridge configuration by hand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/jirabridge/jirabridge/internal/jirasim"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("jirasim", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8089", "listen address")
	statePath := fs.String("state", "", "file to keep the state in across restarts (loaded if present, rewritten on every change)")
	seedPath := fs.String("seed", "", "YAML or JSON file with users, fields, workflows and projects to create at start")
	maxResults := fs.Int("max-results", 1000, "cap on search maxResults")
	maxAttach := fs.Int64("max-attachment-size", 10<<20, "largest attachment in bytes (larger: 413)")
	failures := fs.Int("max-login-failures", 3, "wrong passwords before a CAPTCHA is required (negative: never)")
	tz := fs.String("tz", "UTC", "time zone of the server and its users (IANA name)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		fmt.Fprintln(os.Stderr, "jirasim: -tz:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv := jirasim.New(jirasim.Options{StatePath: *statePath, MaxResults: *maxResults, MaxAttachmentSize: *maxAttach,
		MaxLoginFailures: *failures, Logger: log, Now: time.Now, Location: loc})
	if *seedPath != "" {
		if err := applySeed(srv, *seedPath); err != nil {
			fmt.Fprintln(os.Stderr, "jirasim:", err)
			return 1
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "jirasim: listen:", err)
		return 1
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	log.Info("jirasim listening", "component", "jirasim", "url", "http://"+ln.Addr().String(), "admin", "admin/admin")
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "jirasim: serve:", err)
		return 1
	}
	return 0
}

func applySeed(srv *jirasim.Server, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read seed: %w", err)
	}
	var sd jirasim.Seed
	if err := yaml.Unmarshal(b, &sd); err != nil { // YAML is a superset of JSON
		return fmt.Errorf("parse seed %s: %w", path, err)
	}
	if err := srv.ApplySeed(sd); err != nil {
		return fmt.Errorf("apply seed %s: %w", path, err)
	}
	return nil
}
