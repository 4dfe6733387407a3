package filedrop

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/transport"
	"github.com/jirabridge/jirabridge/transport/transporttest"
)

// harness connects a Sender and Receivers through one directory: the
// outgoing directory of one side is the incoming directory of the other,
// as after carrying the files over.
type harness struct {
	dir  string
	wake chan struct{}

	mu       sync.Mutex
	reported []string
	injected int
}

func newHarness(t *testing.T) transporttest.Harness {
	return &harness{dir: t.TempDir(), wake: make(chan struct{}, 1)}
}

// wakingSender pokes the receiver after each write, as a notify channel
// would; the receiver never polls in tests.
type wakingSender struct {
	*Sender
	wake chan struct{}
}

func (s wakingSender) Send(ctx context.Context, m transport.Outgoing) error {
	err := s.Sender.Send(ctx, m)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return err
}

func (h *harness) NewSender(t *testing.T) transport.Sender {
	s, err := NewSender(h.dir, SenderOptions{From: "a@a.example.com", To: []string{"b@b.example.org"}})
	if err != nil {
		t.Fatal(err)
	}
	return wakingSender{s, h.wake}
}

func (h *harness) NewReceiver(t *testing.T) transport.Receiver {
	r, err := NewReceiver(h.dir, ReceiverOptions{
		PollInterval: -1,
		Wake:         h.wake,
		OnQuarantine: func(name, reason string) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.reported = append(h.reported, reason)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// InjectRaw drops a file as a person would, under a name that sorts before
// the sender's files.
func (h *harness) InjectRaw(t *testing.T, raw []byte) {
	h.mu.Lock()
	h.injected++
	name := filepath.Join(h.dir, "0000-injected-"+string(rune('a'+h.injected))+".eml")
	h.mu.Unlock()
	if err := os.WriteFile(name, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) Quarantined(t *testing.T) [][]byte {
	entries, err := os.ReadDir(filepath.Join(h.dir, QuarantineDir))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".reason") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(h.dir, QuarantineDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func (h *harness) Reported(*testing.T) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.reported)
}

func TestBehaviourSuite(t *testing.T) {
	t.Parallel()
	transporttest.Run(t, newHarness)
}

func TestFileNameSortsBySeq(t *testing.T) {
	t.Parallel()
	var names []string
	for _, seq := range []uint64{10, 9, 100, 1, 18446744073709551615} {
		names = append(names, FileName(transport.Meta{Sync: "s", Sender: "n", Seq: seq}))
	}
	slices.Sort(names)
	want := []string{
		"s-n-00000000000000000001.eml",
		"s-n-00000000000000000009.eml",
		"s-n-00000000000000000010.eml",
		"s-n-00000000000000000100.eml",
		"s-n-18446744073709551615.eml",
	}
	if !slices.Equal(names, want) {
		t.Errorf("sorted names = %q, want %q", names, want)
	}
}

func TestSendWritesTheMailBytes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := time.Date(2026, 11, 24, 4, 0, 0, 0, time.UTC)
	s, err := NewSender(dir, SenderOptions{From: "a@a.example.com", To: []string{"b@b.example.org"}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	m := transporttest.Envelope(7, 123)
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	want, err := transport.EncodeMail(m, transport.MailHeader{From: "a@a.example.com", To: []string{"b@b.example.org"}, Date: now})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, FileName(m.Meta)))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Error("file content differs from EncodeMail output")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d entries in the outgoing directory, want 1 (temporary files left?)", len(entries))
	}
}

func TestMissingDirectoryIsPermanentAndNamesTheVariable(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nope")
	_, err := NewSender(missing, SenderOptions{})
	if errclass.Of(err) != errclass.Permanent || !strings.Contains(err.Error(), DefaultOutgoingVar) {
		t.Errorf("NewSender on a missing dir: err = %v (class %v), want permanent naming %s", err, errclass.Of(err), DefaultOutgoingVar)
	}
	_, err = NewReceiver(missing, ReceiverOptions{DirVar: "MY_IN_DIR"})
	if errclass.Of(err) != errclass.Permanent || !strings.Contains(err.Error(), "MY_IN_DIR") {
		t.Errorf("NewReceiver on a missing dir: err = %v, want permanent naming MY_IN_DIR", err)
	}

	// The directory disappears after start (share unmounted, stick pulled
	// and not re-inserted under the same path).
	dir := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := NewSender(dir, SenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	err = s.Send(context.Background(), transporttest.Envelope(1, 10))
	if errclass.Of(err) != errclass.Permanent || !strings.Contains(err.Error(), DefaultOutgoingVar) {
		t.Errorf("Send into a removed dir: err = %v, want permanent naming %s", err, DefaultOutgoingVar)
	}
}

func TestReceiverSkipsTempAndOtherFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := transporttest.Envelope(3, 50)
	raw, err := transport.EncodeMail(m, transporttest.MailHeader())
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		".tmp-s-n-00000000000000000001.eml-abcdef": raw[:len(raw)/2], // a writer mid-way
		"README.txt":                 []byte("carry these files to the other site"),
		"Saved From Thunderbird.EML": raw, // exported by a person, any name
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var reported []string
	r, err := NewReceiver(dir, ReceiverOptions{PollInterval: -1, OnQuarantine: func(n, reason string) { reported = append(reported, n+":"+reason) }})
	if err != nil {
		t.Fatal(err)
	}
	in, ack, err := r.Receive(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if in.ID != "Saved From Thunderbird.EML" || in.Meta.Seq != 3 {
		t.Errorf("received %s seq %d, want the exported mail seq 3", in.ID, in.Meta.Seq)
	}
	if err := ack(context.Background(), transport.Stored); err != nil {
		t.Fatal(err)
	}
	if err := ack(context.Background(), transport.Stored); err == nil {
		t.Error("a second ack succeeded, want an error")
	}
	if _, err := os.Stat(filepath.Join(dir, ProcessedDir, "Saved From Thunderbird.EML")); err != nil {
		t.Errorf("stored file not in processed/: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := r.Receive(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Receive on a directory with nothing to read: err = %v, want context.Canceled", err)
	}
	for _, name := range []string{".tmp-s-n-00000000000000000001.eml-abcdef", "README.txt"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s was touched: %v", name, err)
		}
	}
	if len(reported) != 0 {
		t.Errorf("reported %q, want nothing", reported)
	}
}

func TestQuarantineWritesReasonAndNeverOverwrites(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var reported []string
	r, err := NewReceiver(dir, ReceiverOptions{PollInterval: -1, MaxSize: 2500, OnQuarantine: func(n, reason string) { reported = append(reported, n+":"+reason) }})
	if err != nil {
		t.Fatal(err)
	}
	big, err := transport.EncodeMail(transporttest.Envelope(1, 3000), transporttest.MailHeader())
	if err != nil {
		t.Fatal(err)
	}
	// Each round: a bad file named x.eml, then a good one that sorts after
	// it, so Receive quarantines the first and returns the second.
	for i, bad := range [][]byte{transporttest.UnrelatedMail("one"), big} {
		good, err := transport.EncodeMail(transporttest.Envelope(uint64(10+i), 10), transporttest.MailHeader())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "x.eml"), bad, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "y.eml"), good, 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		in, ack, err := r.Receive(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if in.ID != "y.eml" {
			t.Fatalf("received %s, want y.eml", in.ID)
		}
		if err := ack(context.Background(), transport.Quarantined("bad_signature")); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"x.eml:" + transport.ReasonNotMultipart, "x.eml:" + transport.ReasonTooLarge}
	if !slices.Equal(reported, want) {
		t.Errorf("reported %q, want %q", reported, want)
	}
	for f, reason := range map[string]string{
		"x.eml.reason":   transport.ReasonNotMultipart,
		"x.1.eml.reason": transport.ReasonTooLarge,
		"y.eml.reason":   "bad_signature",
		"y.1.eml.reason": "bad_signature",
	} {
		b, err := os.ReadFile(filepath.Join(dir, QuarantineDir, f))
		if err != nil {
			t.Errorf("quarantine/%s: %v", f, err)
			continue
		}
		if !strings.HasPrefix(string(b), reason) {
			t.Errorf("quarantine/%s = %q, want it to start with %s", f, b, reason)
		}
		if _, err := os.Stat(filepath.Join(dir, QuarantineDir, strings.TrimSuffix(f, ".reason"))); err != nil {
			t.Errorf("quarantined file next to %s: %v", f, err)
		}
	}
}

func TestReceiveInSequenceOrder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := NewSender(dir, SenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sent := []uint64{12, 3, 100, 1, 9, 10}
	for _, seq := range sent {
		if err := s.Send(context.Background(), transporttest.Envelope(seq, 20)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := NewReceiver(dir, ReceiverOptions{PollInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for range sent {
		in, ack, err := r.Receive(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, in.Meta.Seq)
		if err := ack(context.Background(), transport.Stored); err != nil {
			t.Fatal(err)
		}
	}
	want := []uint64{1, 3, 9, 10, 12, 100}
	if !slices.Equal(got, want) {
		t.Errorf("received %v, want %v", got, want)
	}
}

// TestPollPicksUpLateFile checks the polling path: a file written while
// Receive waits is found without any wake-up.
func TestPollPicksUpLateFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r, err := NewReceiver(dir, ReceiverOptions{PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		in  *transport.Incoming
		err error
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		in, _, err := r.Receive(ctx)
		done <- result{in, err}
	}()
	s, err := NewSender(dir, SenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), transporttest.Envelope(5, 10)); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil || res.in.Meta.Seq != 5 {
		t.Errorf("Receive = %+v, %v; want seq 5", res.in, res.err)
	}
}

// TestConcurrentReceiveHandsOutEachFileOnce runs Receive from several
// goroutines: every file must go to exactly one of them.
func TestConcurrentReceiveHandsOutEachFileOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := NewSender(dir, SenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 30
	for i := 1; i <= n; i++ {
		if err := s.Send(context.Background(), transporttest.Envelope(uint64(i), 10)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := NewReceiver(dir, ReceiverOptions{PollInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[uint64]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				mu.Lock()
				total := 0
				for _, c := range seen {
					total += c
				}
				mu.Unlock()
				if total >= n {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				in, ack, err := r.Receive(ctx)
				cancel()
				if err != nil {
					continue // nothing left for this goroutine right now
				}
				mu.Lock()
				seen[in.Meta.Seq]++
				mu.Unlock()
				if err := ack(context.Background(), transport.Stored); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for i := uint64(1); i <= n; i++ {
		if seen[i] != 1 {
			t.Errorf("seq %d handed out %d times, want 1", i, seen[i])
		}
	}
}

func TestUnreadableFileIsQuarantined(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Skip("root reads every file; run as another user to test unreadable files")
	}
	dir := t.TempDir()
	raw, err := transport.EncodeMail(transporttest.Envelope(1, 10), transporttest.MailHeader())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.eml"), raw, 0o000); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.eml"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	var reported []string
	r, err := NewReceiver(dir, ReceiverOptions{PollInterval: -1, OnQuarantine: func(n, reason string) { reported = append(reported, n+":"+reason) }})
	if err != nil {
		t.Fatal(err)
	}
	in, _, err := r.Receive(context.Background())
	if err != nil || in.ID != "b.eml" {
		t.Fatalf("Receive = %v, %v; want b.eml", in, err)
	}
	if want := []string{"a.eml:" + ReasonUnreadable}; !slices.Equal(reported, want) {
		t.Errorf("reported %q, want %q", reported, want)
	}
}
