package templates

import (
	"strings"
	"testing"
)

func TestEnvelopeMail(t *testing.T) {
	t.Parallel()
	x, err := ParseText()
	if err != nil {
		t.Fatal(err)
	}
	got, err := x.EnvelopeMail(EnvelopeMail{
		SyncName: "Support ⇄ Dev", Sync: "s1", Sender: "nodeA", Seq: 42,
		Kind: "changes", Filename: "jirabridge-s1-42.jbe",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Support ⇄ Dev (s1)", "nodeA", "Sequence: 42", "changes", "jirabridge-s1-42.jbe", "jirabridge messages verify"} {
		if !strings.Contains(got, want) {
			t.Errorf("EnvelopeMail text lacks %q:\n%s", want, got)
		}
	}
}

func TestEveryTextTemplateParses(t *testing.T) {
	t.Parallel()
	x, err := ParseText()
	if err != nil {
		t.Fatal(err)
	}
	if x.t.Lookup("envelope_mail.txt.tmpl") == nil {
		t.Error("envelope_mail.txt.tmpl missing from the parsed set")
	}
}
