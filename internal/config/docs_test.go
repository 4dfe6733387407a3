package config

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsListEveryVariable keeps docs/configuration.md and
// deploy/example.env in step with the Config struct.
func TestDocsListEveryVariable(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../../deploy/example.env")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range Variables() {
		if strings.HasSuffix(name, FileSuffix) {
			continue // documented once as the secret's _FILE variant
		}
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("docs/configuration.md does not document %s", name)
		}
		if !strings.Contains(string(example), name) {
			t.Errorf("deploy/example.env does not mention %s", name)
		}
	}
}

// TestExampleEnvLoads loads the uncommented lines of deploy/example.env,
// with the secret files it names replaced by temporary ones.
func TestExampleEnvLoads(t *testing.T) {
	t.Parallel()
	f, err := os.Open("../../deploy/example.env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	known := map[string]bool{}
	for _, n := range Variables() {
		known[n] = true
	}
	env := map[string]string{}
	dir := t.TempDir()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			if k, _, ok := strings.Cut(strings.TrimPrefix(line, "#"), "="); ok && strings.HasPrefix(k, Prefix+"_") && !known[k] {
				t.Errorf("example.env mentions unknown variable %s", k)
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !known[k] {
			t.Errorf("example.env: bad line %q", line)
			continue
		}
		if strings.HasSuffix(k, FileSuffix) {
			p := filepath.Join(dir, k)
			if err := os.WriteFile(p, []byte("example-secret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			v = p
		}
		env[k] = v
	}
	if _, err := Load(func(k string) string { return env[k] }); err != nil {
		t.Errorf("example.env does not load:\n%v", err)
	}
}
