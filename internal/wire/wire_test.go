package wire

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

var update = flag.Bool("update", false, "regenerate the golden files in testdata/ (keys are kept if present)")

const (
	goldenSync   = "sync-golden"
	goldenSender = "node-a"
)

// goldenTime is the fixed time of the golden vectors.
var goldenTime = time.Date(2026, 11, 24, 4, 30, 0, 123_000_000, time.UTC)

// goldenChanges covers every Value kind and every optional sub-structure,
// so the golden encoding pins all of them.
func goldenChanges() []Change {
	return []Change{
		{
			Version: 1, ID: "A:10001:1", IssueID: "10001", IssueKey: "PRJ-1", Kind: IssueCreate,
			At:        goldenTime,
			Author:    &User{Name: "alice", Display: "Alice Example", Email: "alice@example.org"},
			IssueType: "bug", Status: "open", ParentIssueID: "10000",
			Fields: map[string]FieldChange{
				"summary":  {Before: NullValue(), After: StringValue("Printer <on> \"fire\" ü")},
				"points":   {Before: NumberValue(3), After: NumberValue(5.5)},
				"labels":   {Before: ListValue(), After: ListValue("a", "b")},
				"assignee": {Before: NullValue(), After: UserValue(User{Name: "bob"})},
			},
		},
		{Version: 1, ID: "A:10001:2", IssueID: "10001", IssueKey: "PRJ-1", Kind: CommentAdd, At: goldenTime.Add(time.Second),
			Comment: &Comment{ID: "c1", Body: "hello", Visibility: &Visibility{Type: "role", Value: "devs"}}},
		{Version: 1, ID: "A:10001:3", IssueID: "10001", Kind: AttachmentAdd, At: goldenTime.Add(2 * time.Second),
			Attachment: &Attachment{ID: "att1", Filename: "x.txt", MimeType: "text/plain", Size: 3,
				SHA256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", Data: []byte("abc")}},
		{Version: 1, ID: "A:10001:4", IssueID: "10001", Kind: LinkAdd, At: goldenTime.Add(3 * time.Second),
			Link: &Link{ID: "l1", Type: "blocks", OtherIssueID: "10002", Direction: "outward"}},
		{Version: 1, ID: "A:10001:5", IssueID: "10001", Kind: WatcherAdd, At: goldenTime.Add(4 * time.Second),
			Watcher: &User{Display: "Carol"}},
	}
}

func goldenEnvelope(t testing.TB) Envelope {
	body, err := EncodeChanges(goldenChanges())
	if err != nil {
		t.Fatal(err)
	}
	return Envelope{
		Header: Header{Version: 1, Sync: goldenSync, Sender: goldenSender, Seq: 7, Ack: 3, Kind: KindChanges, Created: goldenTime},
		Body:   body,
	}
}

// goldenKeys returns the committed sender and receiver keys.
func goldenKeys(t testing.TB) (sender, receiver NodeKeys) {
	t.Helper()
	path := filepath.Join("testdata", "keys.txt")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && *update {
		s, err1 := GenerateNodeKeys()
		r, err2 := GenerateNodeKeys()
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		b = []byte("# Fixed keys of the golden test vectors. Test data only: never use them.\n" +
			"sender " + s.SecretText() + "\nreceiver " + r.SecretText() + "\n")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	keys := map[string]NodeKeys{}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := ParseNodeKeys(rest)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		keys[name] = k
	}
	return keys["sender"], keys["receiver"]
}

func keyringFor(t testing.TB, sender, receiver NodeKeys) *MemKeyring {
	t.Helper()
	kr := NewMemKeyring()
	kr.AddSync(goldenSync, receiver.Identity)
	if err := kr.AddSender(goldenSync, goldenSender, sender.Public().Signing); err != nil {
		t.Fatal(err)
	}
	return kr
}

func mustKeys(t testing.TB) NodeKeys {
	t.Helper()
	k, err := GenerateNodeKeys()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// small returns a small sealed envelope and the keyring that opens it.
func small(t testing.TB) (Envelope, []byte, *MemKeyring) {
	t.Helper()
	s, r := mustKeys(t), mustKeys(t)
	body, err := EncodeChanges([]Change{{ID: "x", IssueID: "1", Kind: IssueUpdate, At: goldenTime}})
	if err != nil {
		t.Fatal(err)
	}
	env := Envelope{Header: Header{Sync: goldenSync, Sender: goldenSender, Seq: 1, Kind: KindChanges, Created: goldenTime}, Body: body}
	b, err := Seal(env, s.Signing, r.Identity.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	env.Version = Version
	return env, b, keyringFor(t, s, r)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/wire -run Golden -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s changed: the wire format must not change by accident\n got: %s\nwant: %s", name, got, want)
	}
}

func TestGoldenEncoding(t *testing.T) {
	env := goldenEnvelope(t)
	hdr, err := encodeHeader(env.Header)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "golden_header.json", hdr)
	golden(t, "golden_changes.json", env.Body)
	ctl, err := EncodeControl("resend", map[string]uint64{"from": 4, "to": 9})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "golden_control.json", ctl)

	// Encoding is deterministic: again, and from a copy with a non-UTC
	// time and version 0, gives the same bytes.
	cs := goldenChanges()
	for i := range cs {
		cs[i].Version = 0
		cs[i].At = cs[i].At.In(time.FixedZone("X", 3600)).Add(456 * time.Microsecond)
	}
	again, err := EncodeChanges(cs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, env.Body) {
		t.Errorf("EncodeChanges is not deterministic:\n got: %s\nwant: %s", again, env.Body)
	}
}

func TestGoldenSealed(t *testing.T) {
	s, r := goldenKeys(t)
	path := filepath.Join("testdata", "golden.sealed")
	if *update {
		b, err := Seal(goldenEnvelope(t), s.Signing, r.Identity.Recipient())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(b, keyringFor(t, s, r))
	if err != nil {
		t.Fatalf("Open(golden.sealed): %v", err)
	}
	if want := goldenEnvelope(t); !reflect.DeepEqual(got, want) {
		t.Errorf("Open(golden.sealed) = %+v\nwant %+v", got, want)
	}
	changes, err := DecodeChanges(got.Body)
	if err != nil {
		t.Fatal(err)
	}
	if want := goldenChanges(); !reflect.DeepEqual(changes, want) {
		t.Errorf("golden changes = %+v\nwant %+v", changes, want)
	}
	// The clear header inside the frame is the golden header.
	hdr, _ := os.ReadFile(filepath.Join("testdata", "golden_header.json"))
	if !bytes.Contains(b[:prefixLen+len(hdr)], hdr) {
		t.Error("golden.sealed does not carry golden_header.json as its header")
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	s, r := mustKeys(t), mustKeys(t)
	kr := keyringFor(t, s, r)
	ctl, err := EncodeControl("heartbeat", nil)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 1<<20)
	for _, tc := range []struct {
		name string
		kind string
		body []byte
	}{
		{"changes", KindChanges, goldenEnvelope(t).Body},
		{"control", KindControl, ctl},
		{"config empty", KindConfig, nil},
		{"handshake big", KindHandshake, big},
	} {
		t.Run(tc.name, func(t *testing.T) {
			created := time.Date(2027, 1, 2, 3, 4, 5, 678_901_234, time.FixedZone("Y", -7200))
			env := Envelope{Header: Header{Sync: goldenSync, Sender: goldenSender, Seq: 1 << 40, Ack: 99, Kind: tc.kind, Created: created}, Body: tc.body}
			b, err := Seal(env, s.Signing, r.Identity.Recipient())
			if err != nil {
				t.Fatal(err)
			}
			got, err := Open(b, kr)
			if err != nil {
				t.Fatal(err)
			}
			want := env
			want.Version = Version
			want.Created = created.UTC().Truncate(time.Millisecond)
			if want.Body == nil {
				want.Body = []byte{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Open(Seal(env)) header = %+v, want %+v (body equal: %v)", got.Header, want.Header, bytes.Equal(got.Body, want.Body))
			}
			peek, err := PeekHeader(b)
			if err != nil || peek != want.Header {
				t.Errorf("PeekHeader = %+v, %v; want %+v", peek, err, want.Header)
			}
		})
	}
}

func TestValueRoundTrip(t *testing.T) {
	t.Parallel()
	for _, v := range []Value{NullValue(), StringValue(""), StringValue("a\"b"), NumberValue(0), NumberValue(-1.25e-7),
		NumberValue(1e300), ListValue(), ListValue("", "x"), UserValue(User{}), UserValue(User{Name: "n", Display: "d", Email: "e"})} {
		b, err := v.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var got Value
		if err := got.UnmarshalJSON(b); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if !got.Equal(v) || !reflect.DeepEqual(got, v) {
			t.Errorf("round trip of %s = %#v, want %#v", b, got, v)
		}
	}
	for _, bad := range []string{"true", "{}", `{"user":{"x":1}}`, `[1]`, `["a",null]`, `"unterminated`, "1e999", "nul", `{"user":{}}x`} {
		var v Value
		if err := v.UnmarshalJSON([]byte(bad)); err == nil {
			t.Errorf("UnmarshalJSON(%s) = %#v, want error", bad, v)
		}
	}
}

func TestFlipEveryByte(t *testing.T) {
	t.Parallel()
	_, b, kr := small(t)
	if _, err := Open(b, kr); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		for _, mask := range []byte{0x01, 0x80} {
			m := bytes.Clone(b)
			m[i] ^= mask
			if _, err := Open(m, kr); err == nil {
				t.Fatalf("Open succeeded after flipping byte %d of %d with %#x", i, len(b), mask)
			}
		}
	}
	for _, m := range [][]byte{b[:len(b)-1], append(bytes.Clone(b), 0), nil, b[:10]} {
		if _, err := Open(m, kr); err == nil {
			t.Errorf("Open succeeded on a frame of %d bytes (sealed %d)", len(m), len(b))
		}
	}
	t.Logf("flipped each of %d bytes", len(b))
}

// resealRaw builds a correctly signed frame around an arbitrary ciphertext,
// for the errors that only a signing peer can cause.
func resealRaw(t *testing.T, h Header, ct []byte, signer ed25519.PrivateKey) []byte {
	t.Helper()
	hdr, err := encodeHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte(magic), byte(Version), byte(len(hdr)>>8), byte(len(hdr)))
	out = append(out, hdr...)
	out = append(out, byte(len(ct)>>24), byte(len(ct)>>16), byte(len(ct)>>8), byte(len(ct)))
	out = append(out, ct...)
	sig, err := signer.Sign(nil, out, &ed25519.Options{Context: sigContext})
	if err != nil {
		t.Fatal(err)
	}
	return append(out, sig...)
}

func encryptRaw(t *testing.T, r age.Recipient, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	s, r, other := mustKeys(t), mustKeys(t), mustKeys(t)
	kr := keyringFor(t, s, r)
	env, _, _ := small(t)
	seal := func(env Envelope, signer ed25519.PrivateKey, to age.Recipient) []byte {
		b, err := Seal(env, signer, to)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := seal(env, s.Signing, r.Identity.Recipient())
	v2 := bytes.Clone(good)
	v2[len(magic)] = 2
	foreign := env
	foreign.Sync = "other-sync"
	stranger := env
	stranger.Sender = "node-z"
	junk := env
	junk.Body = []byte("{not json")
	newer := env
	newer.Body = []byte(`[{"v":2,"id":"x","issue_id":"1","kind":"issue.update","at":"2026-01-01T00:00:00Z"}]`)
	badCtl := env
	badCtl.Kind = KindControl
	badCtl.Body = []byte(`{"data":1}`)

	tests := []struct {
		name   string
		in     []byte
		want   error
		reason string
	}{
		{"plain mail", []byte("From: a@b\r\n\r\nhello"), ErrNotJirabridge, "not_jirabridge"},
		{"empty", nil, ErrNotJirabridge, "not_jirabridge"},
		{"truncated", good[:len(good)-1], ErrNotJirabridge, "not_jirabridge"},
		{"newer version", v2, ErrUnsupportedVersion, "unsupported_version"},
		{"unknown sync", seal(foreign, s.Signing, r.Identity.Recipient()), ErrUnknownSync, "unknown_sync"},
		{"unknown sender", seal(stranger, s.Signing, r.Identity.Recipient()), ErrUnknownSender, "unknown_sender"},
		{"signed by another key", seal(env, other.Signing, r.Identity.Recipient()), ErrBadSignature, "bad_signature"},
		{"encrypted to another key", seal(env, s.Signing, other.Identity.Recipient()), ErrDecrypt, "decrypt_failed"},
		{"ciphertext not age", resealRaw(t, env.Header, []byte("garbage"), s.Signing), ErrDecrypt, "decrypt_failed"},
		{"body not flate", resealRaw(t, env.Header, encryptRaw(t, r.Identity.Recipient(), []byte{0xff, 0xff}), s.Signing), ErrCorruptBody, "corrupt_body"},
		{"changes not json", seal(junk, s.Signing, r.Identity.Recipient()), ErrCorruptBody, "corrupt_body"},
		{"change of newer version", seal(newer, s.Signing, r.Identity.Recipient()), ErrUnsupportedVersion, "unsupported_version"},
		{"control without type", seal(badCtl, s.Signing, r.Identity.Recipient()), ErrCorruptBody, "corrupt_body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(tc.in, kr)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open err = %v, want %v", err, tc.want)
			}
			if got := Reason(err); got != tc.reason {
				t.Errorf("Reason = %q, want %q", got, tc.reason)
			}
			for _, other := range []error{ErrNotJirabridge, ErrUnsupportedVersion, ErrUnknownSync, ErrUnknownSender, ErrBadSignature, ErrDecrypt, ErrCorruptBody, ErrKeyring} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("err %v also matches %v", err, other)
				}
			}
			if strings.Contains(err.Error(), "not json") || strings.Contains(err.Error(), "hello") {
				t.Errorf("error leaks payload: %v", err)
			}
		})
	}
}

func TestErrorContext(t *testing.T) {
	t.Parallel()
	env, b, _ := small(t)
	_, err := Open(b, NewMemKeyring())
	if msg := err.Error(); !strings.Contains(msg, `"`+env.Sync+`"`) || !strings.Contains(msg, `"`+env.Sender+`"`) {
		t.Errorf("error %q does not name sync and sender", msg)
	}
}

type failingKeyring struct{ err error }

func (f failingKeyring) Identity(string) (age.Identity, bool, error) { return nil, false, f.err }
func (f failingKeyring) SenderKey(string, string) (ed25519.PublicKey, bool, error) {
	return nil, false, f.err
}

func TestKeyringError(t *testing.T) {
	t.Parallel()
	_, b, _ := small(t)
	cause := errors.New("database is locked")
	_, err := Open(b, failingKeyring{cause})
	if !errors.Is(err, ErrKeyring) || !errors.Is(err, cause) || Reason(err) != "keyring_error" {
		t.Errorf("Open with failing keyring = %v (reason %q), want ErrKeyring wrapping the cause", err, Reason(err))
	}
}

func TestReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("x"), "invalid_input"},
		{fmt.Errorf("a: %w", ErrBadSignature), "bad_signature"},
		{ErrNotJirabridge, "not_jirabridge"},
		{ErrUnknownSync, "unknown_sync"},
		{ErrUnknownSender, "unknown_sender"},
		{ErrDecrypt, "decrypt_failed"},
		{ErrCorruptBody, "corrupt_body"},
		{ErrUnsupportedVersion, "unsupported_version"},
		{ErrKeyring, "keyring_error"},
	} {
		if got := Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestSealRefusesBadInput(t *testing.T) {
	t.Parallel()
	k := mustKeys(t)
	ok := Header{Sync: "s", Sender: "n", Kind: KindControl, Created: goldenTime}
	mod := func(f func(*Envelope)) Envelope { e := Envelope{Header: ok}; f(&e); return e }
	for name, env := range map[string]Envelope{
		"no sync":      mod(func(e *Envelope) { e.Sync = "" }),
		"long sender":  mod(func(e *Envelope) { e.Sender = strings.Repeat("n", MaxIDLen+1) }),
		"bad kind":     mod(func(e *Envelope) { e.Kind = "chat" }),
		"no time":      mod(func(e *Envelope) { e.Created = time.Time{} }),
		"version 2":    mod(func(e *Envelope) { e.Version = 2 }),
		"far future":   mod(func(e *Envelope) { e.Created = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }),
		"body too big": mod(func(e *Envelope) { e.Body = make([]byte, MaxBodySize+1) }),
	} {
		if _, err := Seal(env, k.Signing, k.Identity.Recipient()); err == nil {
			t.Errorf("%s: Seal succeeded", name)
		}
	}
	if _, err := Seal(Envelope{Header: ok}, nil, k.Identity.Recipient()); err == nil {
		t.Error("Seal without signer succeeded")
	}
	if _, err := Seal(Envelope{Header: ok}, k.Signing, nil); err == nil {
		t.Error("Seal without recipient succeeded")
	}
}

func TestDecodeChangesErrors(t *testing.T) {
	t.Parallel()
	at := `"at":"2026-01-01T00:00:00Z"`
	for _, tc := range []struct {
		in   string
		want error
	}{
		{``, ErrCorruptBody},
		{`null`, ErrCorruptBody},
		{`{}`, ErrCorruptBody},
		{`[1]`, ErrCorruptBody},
		{`[{"id":"x","issue_id":"1","kind":"k",` + at + `}]`, ErrCorruptBody}, // no version
		{`[{"v":1,"issue_id":"1","kind":"k",` + at + `}]`, ErrCorruptBody},    // no id
		{`[{"v":1,"id":"x","kind":"k",` + at + `}]`, ErrCorruptBody},          // no issue
		{`[{"v":1,"id":"x","issue_id":"1",` + at + `}]`, ErrCorruptBody},      // no kind
		{`[{"v":1,"id":"x","issue_id":"1","kind":"k"}]`, ErrCorruptBody},      // no time
		{`[{"v":1,"id":"x","issue_id":"1","kind":"k","at":"secret-time"}]`, ErrCorruptBody},
		{`[{"v":1,"id":"x","issue_id":"1","kind":"k",` + at + `,"fields":{"f":{"before":true,"after":null}}}]`, ErrCorruptBody},
		{`[{"v":3,"id":"x","issue_id":"1","kind":"k",` + at + `}]`, ErrUnsupportedVersion},
	} {
		_, err := DecodeChanges([]byte(tc.in))
		if !errors.Is(err, tc.want) {
			t.Errorf("DecodeChanges(%s) err = %v, want %v", tc.in, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error leaks input: %v", err)
		}
	}
	got, err := DecodeChanges([]byte(`[]`))
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("DecodeChanges([]) = %#v, %v", got, err)
	}
}

func TestControl(t *testing.T) {
	t.Parallel()
	b, err := EncodeControl("ack", struct {
		Upto uint64 `json:"upto"`
	}{42})
	if err != nil {
		t.Fatal(err)
	}
	c, err := DecodeControl(b)
	if err != nil || c.Type != "ack" {
		t.Fatalf("DecodeControl = %+v, %v", c, err)
	}
	var p struct {
		Upto uint64 `json:"upto"`
	}
	if err := c.Decode(&p); err != nil || p.Upto != 42 {
		t.Errorf("Decode = %+v, %v", p, err)
	}
	if _, err := EncodeControl("", nil); err == nil {
		t.Error("EncodeControl with empty type succeeded")
	}
	for _, bad := range []string{`{"type":"x","extra":1}`, `{"type":""}`, `[]`, `{"type":"x"} {}`} {
		if _, err := DecodeControl([]byte(bad)); !errors.Is(err, ErrCorruptBody) {
			t.Errorf("DecodeControl(%s) err = %v, want ErrCorruptBody", bad, err)
		}
	}
	if err := (Control{Type: "x"}).Decode(&p); !errors.Is(err, ErrCorruptBody) {
		t.Errorf("Decode of empty payload err = %v", err)
	}
}

func TestKeysText(t *testing.T) {
	t.Parallel()
	k := mustKeys(t)
	back, err := ParseNodeKeys(k.SecretText())
	if err != nil {
		t.Fatal(err)
	}
	if !back.Signing.Equal(k.Signing) || back.Identity.String() != k.Identity.String() {
		t.Error("ParseNodeKeys(SecretText) differs")
	}
	pub := k.Public()
	txt, err := pub.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	var p PublicKeys
	if err := p.UnmarshalText(txt); err != nil {
		t.Fatal(err)
	}
	if !p.Signing.Equal(pub.Signing) || p.Recipient.String() != pub.Recipient.String() {
		t.Errorf("public keys round trip: got %s, want %s", p, pub)
	}
	if !strings.HasPrefix(string(txt), "jbsig-ed25519:") || !strings.Contains(string(txt), " age1") {
		t.Errorf("public keys text %q", txt)
	}
	secret := k.SecretText()
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k)} {
		if strings.Contains(s, "AGE-SECRET") || strings.Contains(s, secret[20:40]) {
			t.Errorf("NodeKeys printed its secrets: %s", s)
		}
	}
	for _, bad := range []string{"", "x y", "jbsig-ed25519:AAAA age1x", FormatSigningKey(pub.Signing) + " nope", FormatSigningKey(pub.Signing)} {
		if _, err := ParsePublicKeys(bad); err == nil {
			t.Errorf("ParsePublicKeys(%q) succeeded", bad)
		}
	}
	for _, bad := range []string{"", "JBSIG-ED25519-SEED:AAAA " + k.Identity.String(), "x AGE-SECRET-KEY-1"} {
		_, err := ParseNodeKeys(bad)
		if err == nil {
			t.Errorf("ParseNodeKeys(%q) succeeded", bad)
		} else if strings.Contains(err.Error(), "AGE-SECRET") {
			t.Errorf("ParseNodeKeys error quotes the secret: %v", err)
		}
	}
	if err := NewMemKeyring().AddSender("nope", "n", pub.Signing); !errors.Is(err, ErrUnknownSync) {
		t.Errorf("AddSender to unknown sync: %v", err)
	}
}

// fuzzSeeds are the inputs every go test runs through FuzzOpen.
func fuzzSeeds(t testing.TB) ([][]byte, *MemKeyring) {
	s, r := goldenKeys(t)
	kr := keyringFor(t, s, r)
	g, err := os.ReadFile(filepath.Join("testdata", "golden.sealed"))
	if err != nil {
		t.Fatal(err)
	}
	seeds := [][]byte{g, nil, []byte(magic), []byte("JBRG\x01\x00\x02{}"), g[:len(g)/2], []byte("From: x\r\n\r\nhi")}
	for _, i := range []int{0, 4, 5, 6, 8, 40, len(g) - 70, len(g) - 1} {
		m := bytes.Clone(g)
		m[i] ^= 0x20
		seeds = append(seeds, m)
	}
	return seeds, kr
}

func FuzzOpen(f *testing.F) {
	seeds, kr := fuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := Open(b, kr)
		if err == nil {
			// Only the genuine golden envelope can open: the fuzzer cannot
			// forge a signature.
			if env.Sync != goldenSync || env.Seq != 7 {
				t.Fatalf("forged envelope opened: %+v", env.Header)
			}
			return
		}
		if r := Reason(err); r == "invalid_input" || r == "keyring_error" {
			t.Fatalf("Open error without a reason: %v", err)
		}
		if h, perr := PeekHeader(b); perr == nil && !validID(h.Sync) {
			t.Fatalf("PeekHeader returned an invalid header: %+v", h)
		}
	})
}

func FuzzDecodeChanges(f *testing.F) {
	f.Add(goldenEnvelope(f).Body)
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"v":1,"id":"x","issue_id":"1","kind":"k","at":"2026-01-01T00:00:00Z","fields":{"a":{"before":[""],"after":{"user":{}}}}}]`))
	f.Add([]byte(`[{"v":1,"fields":{"a":{"before":1e999}}}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := DecodeChanges(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptBody) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("DecodeChanges error of no known kind: %v", err)
			}
			return
		}
		// What decodes re-encodes, and the re-encoding is a fixed point.
		b2, err := EncodeChanges(cs)
		if err != nil {
			t.Fatalf("decoded changes do not re-encode: %v", err)
		}
		cs2, err := DecodeChanges(b2)
		if err != nil {
			t.Fatalf("re-encoded changes do not decode: %v", err)
		}
		b3, err := EncodeChanges(cs2)
		if err != nil || !bytes.Equal(b2, b3) {
			t.Fatalf("encoding is not a fixed point:\n%s\n%s", b2, b3)
		}
	})
}

func benchBatch(b *testing.B) []byte {
	cs := make([]Change, 50)
	for i := range cs {
		cs[i] = Change{
			ID: fmt.Sprintf("A:%d", i), IssueID: fmt.Sprint(10000 + i%7), IssueKey: fmt.Sprintf("PRJ-%d", i%7),
			Kind: IssueUpdate, At: goldenTime.Add(time.Duration(i) * time.Second),
			Author: &User{Name: "alice", Display: "Alice Example"},
			Fields: map[string]FieldChange{
				"summary":     {Before: StringValue("Old summary of the issue"), After: StringValue("New summary of the issue")},
				"description": {Before: NullValue(), After: StringValue(strings.Repeat("Some description text. ", 20))},
				"labels":      {Before: ListValue("a"), After: ListValue("a", "b")},
			},
		}
	}
	body, err := EncodeChanges(cs)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

func BenchmarkSeal(b *testing.B) {
	k := mustKeys(b)
	env := Envelope{Header: Header{Sync: goldenSync, Sender: goldenSender, Seq: 1, Kind: KindChanges, Created: goldenTime}, Body: benchBatch(b)}
	rc := k.Identity.Recipient()
	b.ReportAllocs()
	b.SetBytes(int64(len(env.Body)))
	for b.Loop() {
		if _, err := Seal(env, k.Signing, rc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	s, r := mustKeys(b), mustKeys(b)
	env := Envelope{Header: Header{Sync: goldenSync, Sender: goldenSender, Seq: 1, Kind: KindChanges, Created: goldenTime}, Body: benchBatch(b)}
	sealed, err := Seal(env, s.Signing, r.Identity.Recipient())
	if err != nil {
		b.Fatal(err)
	}
	kr := keyringFor(b, s, r)
	b.ReportAllocs()
	b.SetBytes(int64(len(env.Body)))
	for b.Loop() {
		if _, err := Open(sealed, kr); err != nil {
			b.Fatal(err)
		}
	}
}
