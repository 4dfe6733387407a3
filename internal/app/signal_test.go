package app

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
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
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRunMain$")
	cmd.Env = append(os.Environ(), "JIRABRIDGE_TEST_RUN_MAIN=1")
	for k, v := range master.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// The last value of a variable wins: a port the OS picks, and the
	// log line that says which.
	cmd.Env = append(cmd.Env, "JIRABRIDGE_HTTP_LISTEN=127.0.0.1:0", "JIRABRIDGE_LOG_LEVEL=info", "JIRABRIDGE_LOG_FORMAT=json")
	out := &syncBuffer{}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = out, io.MultiWriter(out, pw)
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var l struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "http listening" {
				select {
				case listening <- l.Addr:
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()
	// Wait until it says it listens, then check it serves: it is running.
	select {
	case addr := <-listening:
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatalf("GET /healthz: %v; output:\n%s", err, out)
		}
		resp.Body.Close()
	case err := <-done:
		t.Fatalf("run exited (%v) before it listened; output:\n%s", err, out)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("run did not listen within 60s; output:\n%s", out)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
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
