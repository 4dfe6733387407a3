package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/jirabridge/jirabridge/internal/jirasim"
)

func TestApplySeedYAML(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "seed.yaml")
	seed := `users:
  - {name: sync, password: sync}
fields:
  - {name: Severity, type: select, options: [S1, S2]}
workflows:
  - name: review
    initial: Open
    transitions:
      - {id: "21", name: Close, to: Closed}
projects:
  - {key: REV, name: Reviewed, workflow: review, roles: {Developers: [sync]}}
`
	if err := os.WriteFile(path, []byte(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := jirasim.New(jirasim.Options{})
	if err := applySeed(srv, path); err != nil {
		t.Fatal(err)
	}
	if id, ok := srv.FieldID("Severity"); !ok || id == "" {
		t.Errorf("seeded field missing")
	}
	if err := srv.AddRoleMember("REV", "Users", "sync"); err != nil {
		t.Errorf("seeded project missing: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(bad, []byte("projects: [{key: lower, name: x}]"), 0o600)
	if err := applySeed(jirasim.New(jirasim.Options{}), bad); err == nil {
		t.Error("bad project key: want an error")
	}
}

func TestRunBadFlags(t *testing.T) {
	t.Parallel()
	if code := run([]string{"-tz", "Nowhere/Nope"}); code != 2 {
		t.Errorf("bad -tz exit = %d, want 2", code)
	}
	if code := run([]string{"-seed", "/nonexistent/seed.yaml", "-addr", "127.0.0.1:0"}); code != 1 {
		t.Errorf("missing seed exit = %d, want 1", code)
	}
}
