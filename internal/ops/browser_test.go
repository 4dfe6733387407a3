package ops

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/store"
)

// TestBrowserRetry opens the status page of a running bridge (two engine
// nodes over two jirasims) in headless Chromium with a parked change (the
// peer Jira refused a field not on its edit screen), signs in with the
// action token, fixes the screen, clicks Retry, lets the bridge step, and
// sees the change applied in the peer Jira and gone from the parked list.
// A screenshot of each step is saved in the test's artifact directory
// (go test -artifacts keeps it; the path is logged).
func TestBrowserRetry(t *testing.T) {
	findChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	w := newBridges(t)
	ref := w.createTask("shown on the status page")
	w.settle()
	f := w.parkOnScreen(ref)
	id := f.ID
	ev, err := NewEvaluator(Options{Store: w.stB, Now: w.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ev.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(HandlerOptions{Store: w.stB, Evaluator: ev, Token: testToken, Now: w.clk.Now,
		JiraURLs: func(string) (string, string) { return w.beta.URL, w.alpha.URL }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h) // 127.0.0.1, a port the OS chose
	defer srv.Close()

	b := startChromium(t, ctx)
	if err := b.call("Page.enable", nil, nil); err != nil {
		t.Fatal(err)
	}
	dir := t.ArtifactDir()
	shot := func(name string) {
		png, err := b.screenshot()
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
	text := func() string {
		s, err := b.eval("document.body.innerText")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	if err := b.navigate(srv.URL + "/"); err != nil {
		t.Fatal(err)
	}
	page := text()
	for _, want := range []string{ref.Key, "cannot be set", "change parked", "Sign in to retry or skip"} {
		if !strings.Contains(page, want) {
			t.Fatalf("status page lacks %q:\n%s", want, page)
		}
	}
	retryID := "retry-" + int64s(id)
	if has, _ := b.eval("document.getElementById('" + retryID + "') !== null"); has != "false" {
		t.Fatalf("Retry button shown before sign-in")
	}
	if _, err := b.eval("document.getElementById('token').value = '" + testToken + "'"); err != nil {
		t.Fatal(err)
	}
	if err := b.clickAndWait("signin"); err != nil {
		t.Fatal(err)
	}
	if page := text(); !strings.Contains(page, "signed in") {
		t.Fatalf("sign-in failed:\n%s", page)
	}
	shot("1-parked.png")

	w.fixScreen() // the operator adds the field to the edit screen
	if err := b.clickAndWait(retryID); err != nil {
		t.Fatal(err)
	}
	if page := text(); !strings.Contains(page, "retry asked") {
		t.Fatalf("after Retry the page says:\n%s", page)
	}
	if got := failureState(t, w.stB, id); got != store.FailureRetrying {
		t.Fatalf("failure %d is %s after Retry, want retrying", id, got)
	}
	w.settle() // the running bridge's next steps
	if got := w.betaPartnerRef(ref); got != w.personalData {
		t.Fatalf("peer Jira has %q after the retry, want %q", got, w.personalData)
	}
	if _, err := ev.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.navigate(srv.URL + "/"); err != nil {
		t.Fatal(err)
	}
	page = text()
	none, _ := b.eval("document.getElementById('no-failures-" + e2eSync + "') !== null")
	if strings.Contains(page, "cannot be set") || none != "true" {
		t.Fatalf("after the retry the page still shows the parked change:\n%s", page)
	}
	links, _ := b.eval("Array.from(document.querySelectorAll('#pairs-" + e2eSync + " a')).map(a => a.href).join(' ')")
	if !strings.Contains(links, w.beta.URL+"/browse/") || !strings.Contains(links, w.alpha.URL+"/browse/"+ref.Key) {
		t.Errorf("pair links = %q, want both Jiras", links)
	}
	if got := failureState(t, w.stB, id); got != store.FailureResolved {
		t.Fatalf("failure %d is %s, want resolved", id, got)
	}
	shot("2-applied.png")
}
