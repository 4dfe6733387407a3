package transport

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenSealed is binary on purpose: every byte value appears, so a
// transfer-encoding bug shows.
func goldenSealed() []byte {
	b := make([]byte, 600)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func goldenOutgoing() Outgoing {
	return Outgoing{
		Meta:   Meta{Sync: "support-dev", SyncName: "Support ⇄ Dev", Sender: "node-a", Seq: 42, Kind: KindChanges},
		Sealed: goldenSealed(),
	}
}

func goldenHeader() MailHeader {
	return MailHeader{
		From: "Bridge A <bridge-a@a.example.com>",
		To:   []string{"Bridge B <bridge-b@b.example.org>"},
		Date: time.Date(2026, 11, 24, 4, 0, 0, 0, time.UTC),
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read golden file: %v", err)
	}
	return b
}

func TestEncodeMailGolden(t *testing.T) {
	got, err := EncodeMail(goldenOutgoing(), goldenHeader())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "envelope.eml")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := readTestdata(t, "envelope.eml")
	if !bytes.Equal(got, want) {
		t.Errorf("EncodeMail output differs from %s (run go test -update to accept):\ngot:\n%s", path, got)
	}
}

func TestEncodeMailIsDeterministic(t *testing.T) {
	t.Parallel()
	a, err := EncodeMail(goldenOutgoing(), goldenHeader())
	if err != nil {
		t.Fatal(err)
	}
	b, err := EncodeMail(goldenOutgoing(), goldenHeader())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("two encodings of the same input differ")
	}
}

func TestEncodeMailHeaders(t *testing.T) {
	t.Parallel()
	raw, err := EncodeMail(goldenOutgoing(), goldenHeader())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"X-Jirabridge-Sync: support-dev\r\n",
		"X-Jirabridge-Sender: node-a\r\n",
		"X-Jirabridge-Seq: 42\r\n",
		"X-Jirabridge-Kind: changes\r\n",
		"Message-Id: <42.node-a.support-dev@jirabridge.invalid>\r\n",
		"Content-Type: application/vnd.jirabridge.envelope",
		"filename=jirabridge-support-dev-42.jbe",
		"Content-Transfer-Encoding: base64\r\n",
		"multipart/mixed",
		"text/plain; charset=utf-8",
	} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("mail lacks %q", want)
		}
	}
	if bytes.Contains(raw, []byte("\n\n")) && !bytes.Contains(raw, []byte("\r\n\r\n")) {
		t.Error("mail has bare LF line endings")
	}
}

func TestEncodeMailRejectsBadInput(t *testing.T) {
	t.Parallel()
	good := goldenOutgoing()
	tests := []struct {
		name string
		mod  func(*Outgoing, *MailHeader)
	}{
		{"empty sync", func(o *Outgoing, _ *MailHeader) { o.Sync = "" }},
		{"sync with slash", func(o *Outgoing, _ *MailHeader) { o.Sync = "a/b" }},
		{"sender with space", func(o *Outgoing, _ *MailHeader) { o.Sender = "a b" }},
		{"sender with two dots", func(o *Outgoing, _ *MailHeader) { o.Sender = "a..b" }},
		{"sync ending in a dot", func(o *Outgoing, _ *MailHeader) { o.Sync = "a." }},
		{"sync too long", func(o *Outgoing, _ *MailHeader) { o.Sync = strings.Repeat("a", 129) }},
		{"unknown kind", func(o *Outgoing, _ *MailHeader) { o.Kind = "gossip" }},
		{"newline in sync name", func(o *Outgoing, _ *MailHeader) { o.SyncName = "a\r\nBcc: x@y" }},
		{"no sealed bytes", func(o *Outgoing, _ *MailHeader) { o.Sealed = nil }},
		{"bad from", func(_ *Outgoing, h *MailHeader) { h.From = "not an address" }},
		{"no to", func(_ *Outgoing, h *MailHeader) { h.To = nil }},
		{"bad to", func(_ *Outgoing, h *MailHeader) { h.To = []string{"@@"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, h := good, goldenHeader()
			o.Sealed = append([]byte(nil), good.Sealed...)
			tt.mod(&o, &h)
			if _, err := EncodeMail(o, h); err == nil {
				t.Error("EncodeMail succeeded, want an error")
			}
		})
	}
}

// TestDecodeMailAccepts decodes the golden mail and the hand-made variants
// of it that real mail servers, lists, gateways and people produce.
func TestDecodeMailAccepts(t *testing.T) {
	t.Parallel()
	want := goldenOutgoing()
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, f := range files {
		name := filepath.Base(f)
		if strings.HasPrefix(name, "reject-") || strings.HasPrefix(name, "foreign-") {
			continue
		}
		n++
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			meta, sealed, err := DecodeMail(readTestdata(t, name))
			if err != nil {
				t.Fatalf("DecodeMail: %v", err)
			}
			if meta != want.Meta {
				t.Errorf("meta = %+v, want %+v", meta, want.Meta)
			}
			if !bytes.Equal(sealed, want.Sealed) {
				t.Errorf("sealed bytes differ: got %d bytes, want %d", len(sealed), len(want.Sealed))
			}
		})
	}
	if n < 2 {
		t.Errorf("only %d accepted golden files found", n)
	}
}

// TestDecodeMailRejects checks every reject-<reason>*.eml and
// foreign-<reason>*.eml file: the reason is in the file name.
func TestDecodeMailRejects(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		var sentinel error
		var rest string
		switch {
		case strings.HasPrefix(name, "reject-"):
			sentinel, rest = ErrMalformed, strings.TrimPrefix(name, "reject-")
		case strings.HasPrefix(name, "foreign-"):
			sentinel, rest = ErrNotJirabridge, strings.TrimPrefix(name, "foreign-")
		default:
			continue
		}
		reason, _, _ := strings.Cut(strings.TrimSuffix(rest, ".eml"), ".")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, _, err := DecodeMail(readTestdata(t, name))
			if err == nil {
				t.Fatal("DecodeMail succeeded, want an error")
			}
			if got := DecodeReason(err); got != reason {
				t.Errorf("reason = %q, want %q (err: %v)", got, reason, err)
			}
			if !errors.Is(err, sentinel) {
				t.Errorf("errors.Is(err, %v) = false (err: %v)", sentinel, err)
			}
			if !errors.Is(err, &DecodeError{Reason: reason}) {
				t.Errorf("errors.Is(err, &DecodeError{Reason: %q}) = false", reason)
			}
		})
	}
}

// TestDecodeMail7bit covers a gateway that decoded the base64 attachment
// and re-sent it as 7bit, which is possible when the envelope is ASCII.
func TestDecodeMail7bit(t *testing.T) {
	t.Parallel()
	o := goldenOutgoing()
	o.Sealed = []byte("ASCII-ARMORED-ENVELOPE-" + strings.Repeat("0123456789abcdef", 8))
	raw, err := EncodeMail(o, goldenHeader())
	if err != nil {
		t.Fatal(err)
	}
	head, body, _ := strings.Cut(string(raw), "Content-Transfer-Encoding: base64\r\n\r\n")
	b64, tail, _ := strings.Cut(body, "\r\n--")
	if b64 == "" || tail == "" {
		t.Fatal("golden layout changed; update this test")
	}
	mangled := head + "Content-Transfer-Encoding: 7bit\r\n\r\n" + string(o.Sealed) + "\r\n--" + tail
	_, sealed, err := DecodeMail([]byte(mangled))
	if err != nil {
		t.Fatalf("DecodeMail: %v", err)
	}
	if !bytes.Equal(sealed, o.Sealed) {
		t.Errorf("sealed = %q, want %q", sealed, o.Sealed)
	}
}

func TestDecodeMailTooLargeForeign(t *testing.T) {
	t.Parallel()
	raw := []byte("From: a@example.org\r\nSubject: holiday pictures\r\n\r\n" + strings.Repeat("x", 1000))
	_, _, err := DecodeOptions{MaxSize: 500}.Decode(raw)
	if DecodeReason(err) != ReasonTooLarge || !errors.Is(err, ErrNotJirabridge) {
		t.Errorf("err = %v, want too_large and ErrNotJirabridge", err)
	}
}
