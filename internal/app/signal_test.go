package app

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestHelperRunMain is not a test: TestRunStopsOnSIGTERM runs the test
// binary again with JIRABRIDGE_TEST_RUN_MAIN=1 to get a real process that
// runs `jirabridge run` with the real signal handling.
func TestHelperRunMain(t *testing.T) {
	if os.Getenv("JIRABRIDGE_TEST_RUN_MAIN") != "1" {
		t.Skip("helper process only")
	}
	os.Exit(Main([]string{"run"}, Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}))
}

// TestRunStopsOnSIGTERM: the daemon, a real process, exits 0 on SIGTERM.
func TestRunStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	master, _, root := fileSites(t)
	master.must("init", "--out", filepath.Join(root, "hs.json"))
	addr := freePort(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRunMain$")
	cmd.Env = append(os.Environ(), "JIRABRIDGE_TEST_RUN_MAIN=1", "JIRABRIDGE_HTTP_LISTEN="+addr)
	for k, v := range master.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until it serves /healthz: it is running.
	eventually(t, "the daemon to listen", 30*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, out)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after SIGTERM: %v, want exit 0; output:\n%s", err, out)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("run did not stop within 60s of SIGTERM; output:\n%s", out)
	}
}
