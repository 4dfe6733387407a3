package ops

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/store"
)

// TestBrowserRetry opens the status page of a running handler in headless
// Chromium with a parked change (Jira refused a field not on its edit
// screen), signs in with the action token, fixes the cause, clicks Retry,
// lets the replay apply the change, and sees it gone from the parked list.
// A screenshot of each step is saved in the test's artifact directory
// (go test -artifacts keeps it; the path is logged).
func TestBrowserRetry(t *testing.T) {
	findChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	c := newClock()
	st := openStore(t, c)
	jira := &fakeJira{}
	rp, id := parkChange(t, st, c, jira)
	ev, err := NewEvaluator(Options{Store: st, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ev.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(HandlerOptions{Store: st, Evaluator: ev, Token: testToken, Now: c.Now})
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
	for _, want := range []string{"OPS-7", "not on the appropriate screen", "change parked", "Sign in to retry or skip"} {
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

	jira.set(nil) // the operator added the field to the edit screen
	if err := b.clickAndWait(retryID); err != nil {
		t.Fatal(err)
	}
	if page := text(); !strings.Contains(page, "retry asked") {
		t.Fatalf("after Retry the page says:\n%s", page)
	}
	if got := failureState(t, st, id); got != store.FailureRetrying {
		t.Fatalf("failure %d is %s after Retry, want retrying", id, got)
	}
	// The daemon's next replay round applies the change.
	res, err := rp.Round(ctx)
	if err != nil || res.Applied != 1 {
		t.Fatalf("replay round after Retry = %+v, %v; want the change applied", res, err)
	}
	if !slices.Contains(jira.Applied(), "node-b/42") {
		t.Fatalf("Jira got %v, want node-b/42 applied", jira.Applied())
	}
	if _, err := ev.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.navigate(srv.URL + "/"); err != nil {
		t.Fatal(err)
	}
	page = text()
	none, _ := b.eval("document.getElementById('no-failures-" + testSync + "') !== null")
	if strings.Contains(page, "OPS-7") || none != "true" {
		t.Fatalf("after the retry the page still shows the parked change:\n%s", page)
	}
	if got := failureState(t, st, id); got != store.FailureResolved {
		t.Fatalf("failure %d is %s, want resolved", id, got)
	}
	shot("2-applied.png")
}
