package ops

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/transport/mailstack"
	"github.com/jirabridge/jirabridge/transport/smtpsend"
)

// TestAlertMailRealStack sends the alert mail of a parked change through
// the real Postfix (submission, STARTTLS, AUTH) into the ops mailbox of
// Dovecot, reads it back over IMAPS, then the resolution. Runs only with
// the stack (JIRABRIDGE_TEST_MAILSTACK, see scripts/mailstack.sh).
func TestAlertMailRealStack(t *testing.T) {
	stack := mailstack.Require(t)
	ctx := context.Background()
	folder := "alerts" + strconv.FormatInt(time.Now().UnixNano(), 36)
	to := stack.Address("ops", folder)
	mailer, err := NewSMTPMailer(smtpsend.Options{Host: stack.Host, Port: stack.SubmissionPort, TLSMode: smtpsend.TLSStartTLS,
		Username: "bridge-a", Password: stack.Password("bridge-a"), CAFile: stack.CAFile,
		From: "bridge-a@" + stack.Domain, To: []string{to}, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer mailer.Close()
	c := newClock()
	st := openStore(t, c)
	hk := newHook(t)
	mn, _ := NewMailNotifier(MailOptions{Mailer: mailer, To: []string{to}, MinInterval: -1, Now: c.Now})
	wn, _ := NewWebhookNotifier(WebhookOptions{URL: hk.srv.URL})
	ev, err := NewEvaluator(Options{Store: st, Now: c.Now, Notifiers: []Notifier{mn, wn}})
	if err != nil {
		t.Fatal(err)
	}
	_, id := parkChange(t, st, c, &fakeJira{})
	if _, err := ev.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	if got := hk.take(); len(got) != 1 {
		t.Fatalf("webhook got %d alerts, want 1", len(got))
	}
	mails := waitMails(t, stack, folder, 1)
	text := unfold(mails[0])
	for _, want := range []string{"FIRING: change parked", "OPS-7", fmt.Sprintf("jirabridge messages retry %d", id), "Auto-Submitted: auto-generated"} {
		if !strings.Contains(text, want) {
			t.Errorf("alert mail lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "SECRET-SALARY") {
		t.Errorf("alert mail shows a field value")
	}
	if err := st.Update(ctx, func(tx *store.Tx) error { return tx.FailureSkip(id) }); err != nil {
		t.Fatal(err)
	}
	if _, err := ev.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	mails = waitMails(t, stack, folder, 2)
	if !strings.Contains(mails[1], "RESOLVED: change parked") {
		t.Errorf("second mail is not the resolution:\n%s", mails[1])
	}
	if _, err := ev.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(readMails(t, stack, folder)); n != 2 {
		t.Errorf("ops folder has %d mails, want 2", n)
	}
}

// waitMails waits until folder of ops holds n mails (Postfix delivers
// asynchronously) and returns them.
func waitMails(t *testing.T, s *mailstack.Stack, folder string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := readMails(t, s, folder)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("ops folder %s has %d mails after 30s, want %d", folder, len(got), n)
		}
		time.Sleep(200 * time.Millisecond) // a real server's delivery has no event to wait on
	}
}

func readMails(t *testing.T, s *mailstack.Stack, folder string) []string {
	t.Helper()
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c, err := imapclient.DialTLS(fmt.Sprintf("%s:%d", s.Host, s.IMAPSPort), &imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool, ServerName: s.Host}})
	if err != nil {
		t.Fatalf("imap dial: %v", err)
	}
	defer c.Close()
	if err := c.Login("ops", s.Password("ops")).Wait(); err != nil {
		t.Fatalf("imap login: %v", err)
	}
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil || sel.NumMessages == 0 {
		return nil // not delivered yet (the folder is created on delivery)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	var seqs imap.SeqSet
	seqs.AddRange(1, sel.NumMessages)
	msgs, err := c.Fetch(seqs, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("imap fetch: %v", err)
	}
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, string(m.FindBodySection(section)))
	}
	return out
}
