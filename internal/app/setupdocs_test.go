package app

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jirabridge/jirabridge/internal/config"
)

// TestSetupDocsName keeps docs/setup.md honest: every variable it names is
// one the bridge reads, every command it shows exists, and the walkthrough
// covers the steps the set-up tests drive.
func TestSetupDocsName(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docs/setup.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	vars := config.Variables()
	for _, v := range regexp.MustCompile(`JIRABRIDGE_[A-Z0-9_]+`).FindAllString(doc, -1) {
		if !slices.Contains(vars, v) {
			t.Errorf("docs/setup.md names %s, which the bridge does not read", v)
		}
	}
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	for _, m := range regexp.MustCompile("jirabridge ([a-z-]+)").FindAllStringSubmatch(doc, -1) {
		if !slices.Contains(names, m[1]) {
			t.Errorf("docs/setup.md shows `jirabridge %s`, which is no command", m[1])
		}
	}
	for _, step := range []string{"jirabridge init --out handshake.json", "jirabridge join handshake.json", "jirabridge publish",
		"jirabridge start", "jirabridge check", "jirabridge run --once", "UPDATE REQUIRED", "WAITING FOR SLAVE"} {
		if !strings.Contains(doc, step) {
			t.Errorf("docs/setup.md does not show %q", step)
		}
	}
}
