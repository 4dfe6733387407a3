// Package filedrop carries envelopes as files, for sites with no mail path:
// the sender writes each envelope as an .eml file (the same bytes as the
// mail would be) into an outgoing directory, a person or a sync job carries
// the files over (network share, USB stick), and the receiver reads them
// from an incoming directory. A mail exported from a mailbox as .eml can be
// dropped in the incoming directory too.
//
// Writes are atomic (temporary name in the same directory, fsync, rename,
// fsync of the directory), so a reader never sees half a file under a final
// name. The receiver moves what the caller stored to processed/ and what it
// must not process to quarantine/, next to a .reason file; it never deletes.
package filedrop

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/transport"
)

// Names of the sub-directories of the incoming directory.
const (
	ProcessedDir  = "processed"
	QuarantineDir = "quarantine"
)

// ReasonUnreadable is the quarantine reason of a file the receiver may not
// read; the other reasons are transport.DecodeMail's.
const ReasonUnreadable = "unreadable_file"

// Default names of the environment variables that point at the
// directories, used in error messages that tell the operator what to set.
const (
	DefaultOutgoingVar = "JIRABRIDGE_FILEDROP_OUTGOING_DIR"
	DefaultIncomingVar = "JIRABRIDGE_FILEDROP_INCOMING_DIR"
)

// DefaultPollInterval is how often the receiver looks at the incoming
// directory when it is empty.
const DefaultPollInterval = 5 * time.Second

// tempPrefix marks files being written; the receiver skips them.
const tempPrefix = ".tmp-"

// FileName returns the name under which the envelope m is written. Names
// sort by sync, sender and sequence number, so a directory listing is the
// order in which they were sent.
func FileName(m transport.Meta) string {
	return fmt.Sprintf("%s-%s-%020d.eml", m.Sync, m.Sender, m.Seq)
}

// SenderOptions configures a Sender. The zero value is usable but for the
// addresses, which the mail header needs.
type SenderOptions struct {
	// From and To are written into the mail header, as the SMTP sender
	// would; they matter only to a person who opens the file.
	From string
	To   []string
	// Now returns the time for the Date header; nil means time.Now.
	Now func() time.Time
	// DirVar names the setting that holds the outgoing directory, for
	// error messages; "" means DefaultOutgoingVar.
	DirVar string
	// Logger; nil discards.
	Logger *slog.Logger
}

// Sender writes envelopes into the outgoing directory.
type Sender struct {
	dir string
	o   SenderOptions
	log *slog.Logger
}

var _ transport.Sender = (*Sender)(nil)

// NewSender returns a Sender writing into dir. dir must exist: a missing
// directory is a permanent error that names the setting to fix.
func NewSender(dir string, o SenderOptions) (*Sender, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.DirVar == "" {
		o.DirVar = DefaultOutgoingVar
	}
	if o.From == "" {
		o.From = "jirabridge <jirabridge@localhost>"
	}
	if len(o.To) == 0 {
		o.To = []string{"jirabridge <jirabridge@localhost>"}
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := checkDir(dir, "outgoing", o.DirVar); err != nil {
		return nil, err
	}
	return &Sender{dir: dir, o: o, log: log.With("component", "filedrop_sender")}, nil
}

// checkDir classifies the state of a configured directory.
func checkDir(dir, what, envVar string) error {
	if dir == "" {
		return errclass.New(errclass.Permanent, "filedrop_no_dir",
			fmt.Errorf("filedrop %s directory is not set: set %s", what, envVar))
	}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errclass.New(errclass.Permanent, "filedrop_no_dir",
			fmt.Errorf("filedrop %s directory %s does not exist: create it or set %s to an existing directory", what, dir, envVar))
	case errors.Is(err, fs.ErrPermission):
		return errclass.New(errclass.Permanent, "filedrop_permission",
			fmt.Errorf("filedrop %s directory %s: %w (check the permissions or %s)", what, dir, err, envVar))
	case err != nil:
		// An unmounted share or a pulled USB stick may come back.
		return errclass.New(errclass.Temporary, "filedrop_stat", fmt.Errorf("filedrop %s directory %s: %w", what, dir, err))
	case !st.IsDir():
		return errclass.New(errclass.Permanent, "filedrop_not_dir",
			fmt.Errorf("filedrop %s directory %s is not a directory: set %s to a directory", what, dir, envVar))
	}
	return nil
}

// classifyIO classifies a file system error met while writing or moving.
func classifyIO(reason string, err error) error {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return errclass.New(errclass.Permanent, "filedrop_permission", err)
	case errors.Is(err, fs.ErrNotExist):
		return errclass.New(errclass.Permanent, "filedrop_no_dir", err)
	default:
		// Disk full, I/O errors on a removable medium: retry later.
		return errclass.New(errclass.Temporary, reason, err)
	}
}

// Send writes m as FileName(m) into the outgoing directory. Sending the same
// envelope again replaces the file.
func (s *Sender) Send(ctx context.Context, m transport.Outgoing) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	raw, err := transport.EncodeMail(m, transport.MailHeader{From: s.o.From, To: s.o.To, Date: s.o.Now()})
	if err != nil {
		return errclass.New(errclass.Permanent, "filedrop_encode", fmt.Errorf("filedrop send seq %d: %w", m.Seq, err))
	}
	if err := checkDir(s.dir, "outgoing", s.o.DirVar); err != nil {
		return err
	}
	name := FileName(m.Meta)
	if err := writeAtomic(s.dir, name, raw); err != nil {
		return classifyIO("filedrop_write", fmt.Errorf("filedrop send seq %d: %w", m.Seq, err))
	}
	s.log.Debug("envelope written", "file", name, "seq", m.Seq, "bytes", len(raw))
	return nil
}

// Close does nothing: every Send is complete when it returns.
func (s *Sender) Close() error { return nil }

// writeAtomic writes data to dir/name through a temporary file in dir, so
// that the final name appears only with the whole content on disk.
func writeAtomic(dir, name string, data []byte) (err error) {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("make temporary name: %w", err)
	}
	tmp := filepath.Join(dir, tempPrefix+name+"-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("rename %s into place: %w", tmp, err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s for fsync: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// ReceiverOptions configures a Receiver. The zero value is usable.
type ReceiverOptions struct {
	// PollInterval is how often an empty incoming directory is looked at
	// again; 0 means DefaultPollInterval, negative means never (only Wake).
	PollInterval time.Duration
	// Wake, when not nil, makes a waiting Receive look at the directory at
	// once; tests use it instead of polling.
	Wake <-chan struct{}
	// OnQuarantine is called for each file the receiver quarantined by
	// itself because it is not a jirabridge mail or is malformed, with the
	// file name and the reason. It is called from Receive.
	OnQuarantine func(name, reason string)
	// MaxSize is the largest file accepted; 0 means
	// transport.DefaultMaxMailSize. Larger files are quarantined.
	MaxSize int
	// DirVar names the setting that holds the incoming directory, for
	// error messages; "" means DefaultIncomingVar.
	DirVar string
	// Logger; nil discards.
	Logger *slog.Logger
}

// Receiver reads envelopes from the incoming directory in file name order.
type Receiver struct {
	dir string
	o   ReceiverOptions
	log *slog.Logger

	mu       sync.Mutex
	inflight map[string]bool // handed out, not acked yet
	closed   bool
}

var _ transport.Receiver = (*Receiver)(nil)

// NewReceiver returns a Receiver on dir, creating its processed/ and
// quarantine/ sub-directories. dir must exist.
func NewReceiver(dir string, o ReceiverOptions) (*Receiver, error) {
	if o.PollInterval == 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.DirVar == "" {
		o.DirVar = DefaultIncomingVar
	}
	if o.MaxSize <= 0 {
		o.MaxSize = transport.DefaultMaxMailSize
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := checkDir(dir, "incoming", o.DirVar); err != nil {
		return nil, err
	}
	for _, sub := range []string{ProcessedDir, QuarantineDir} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, classifyIO("filedrop_mkdir", fmt.Errorf("filedrop create %s directory: %w", sub, err))
		}
	}
	return &Receiver{dir: dir, o: o, log: log.With("component", "filedrop_receiver"), inflight: map[string]bool{}}, nil
}

// candidate reports whether a directory entry is a finished mail file:
// a regular .eml file (any case), not a temporary file of a writer.
func candidate(e fs.DirEntry) bool {
	name := e.Name()
	if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "~") {
		return false
	}
	return strings.EqualFold(filepath.Ext(name), ".eml")
}

// Receive returns the next envelope file in name order. Files that do not
// decode as a jirabridge mail are moved to quarantine/ and reported through
// OnQuarantine, and Receive goes on with the next file.
func (r *Receiver) Receive(ctx context.Context) (*transport.Incoming, transport.AckFunc, error) {
	var ticker *time.Ticker
	var tick <-chan time.Time
	for {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		r.mu.Lock()
		closed := r.closed
		r.mu.Unlock()
		if closed {
			return nil, nil, errclass.New(errclass.Permanent, "filedrop_closed", errors.New("filedrop receive: receiver is closed"))
		}
		in, ack, err := r.next(ctx)
		if err != nil || in != nil {
			if ticker != nil {
				ticker.Stop()
			}
			return in, ack, err
		}
		if ticker == nil && r.o.PollInterval > 0 {
			ticker = time.NewTicker(r.o.PollInterval)
			tick = ticker.C
		}
		select {
		case <-ctx.Done():
			if ticker != nil {
				ticker.Stop()
			}
			return nil, nil, ctx.Err()
		case <-r.o.Wake:
		case <-tick:
		}
	}
}

// next scans the directory once and returns the first envelope that is not
// handed out already, or nil when there is none.
func (r *Receiver) next(ctx context.Context) (*transport.Incoming, transport.AckFunc, error) {
	if err := checkDir(r.dir, "incoming", r.o.DirVar); err != nil {
		return nil, nil, err
	}
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, nil, classifyIO("filedrop_read_dir", fmt.Errorf("filedrop list %s: %w", r.dir, err))
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if candidate(e) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		// Claim the file before reading it, so concurrent Receive calls
		// never hand out the same file twice.
		r.mu.Lock()
		busy := r.inflight[name]
		r.inflight[name] = true
		r.mu.Unlock()
		if busy {
			continue
		}
		in, ack, err := r.take(name)
		if in == nil || err != nil {
			r.release(name)
		}
		if err != nil || in != nil {
			return in, ack, err
		}
	}
	return nil, nil, nil
}

func (r *Receiver) release(name string) {
	r.mu.Lock()
	delete(r.inflight, name)
	r.mu.Unlock()
}

// take reads and decodes one claimed file. It returns nil, nil, nil when the
// file is gone or was quarantined.
func (r *Receiver) take(name string) (*transport.Incoming, transport.AckFunc, error) {
	path := filepath.Join(r.dir, name)
	raw, err := readLimited(path, r.o.MaxSize)
	var reason string
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, nil // moved away by someone else meanwhile
	case errors.Is(err, errTooLarge):
		reason = transport.ReasonTooLarge
	case errors.Is(err, fs.ErrPermission):
		// One file nobody may read must not stop the whole drop.
		reason = ReasonUnreadable
	default:
		return nil, nil, classifyIO("filedrop_read", fmt.Errorf("filedrop read %s: %w", name, err))
	}
	var meta transport.Meta
	var sealed []byte
	if err == nil {
		meta, sealed, err = transport.DecodeOptions{MaxSize: r.o.MaxSize}.Decode(raw)
		reason = transport.DecodeReason(err)
	}
	if err != nil {
		if qerr := r.quarantine(name, reason+": "+err.Error()); qerr != nil {
			return nil, nil, qerr
		}
		r.log.Warn("file quarantined", "file", name, "reason", reason, "error", err)
		if r.o.OnQuarantine != nil {
			r.o.OnQuarantine(name, reason)
		}
		return nil, nil, nil
	}
	in := &transport.Incoming{ID: name, Meta: meta, Sealed: sealed, Raw: raw}
	return in, r.ackFunc(name), nil
}

var errTooLarge = errors.New("file too large")

func readLimited(path string, max int) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > int64(max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", errTooLarge, st.Size(), max)
	}
	return os.ReadFile(path)
}

// ackFunc moves the file once the caller decided.
func (r *Receiver) ackFunc(name string) transport.AckFunc {
	var once sync.Once
	return func(ctx context.Context, d transport.Disposition) error {
		err := errors.New("filedrop ack: already acked")
		once.Do(func() {
			defer r.release(name)
			if d.Quarantine {
				err = r.quarantine(name, d.Reason)
				return
			}
			err = r.move(name, ProcessedDir)
		})
		return err
	}
}

// quarantine writes the reason sidecar, then moves the file, so a file in
// quarantine always has its reason next to it (a crash in between leaves a
// reason without a file, not the reverse).
func (r *Receiver) quarantine(name, reason string) error {
	qdir := filepath.Join(r.dir, QuarantineDir)
	target := freeName(qdir, name)
	if err := writeAtomic(qdir, target+".reason", []byte(reason+"\n")); err != nil {
		return classifyIO("filedrop_quarantine", fmt.Errorf("filedrop quarantine %s: %w", name, err))
	}
	if err := r.moveAs(name, QuarantineDir, target); err != nil {
		return err
	}
	return nil
}

func (r *Receiver) move(name, sub string) error {
	return r.moveAs(name, sub, freeName(filepath.Join(r.dir, sub), name))
}

func (r *Receiver) moveAs(name, sub, target string) error {
	if err := os.Rename(filepath.Join(r.dir, name), filepath.Join(r.dir, sub, target)); err != nil {
		return classifyIO("filedrop_move", fmt.Errorf("filedrop move %s to %s/: %w", name, sub, err))
	}
	if err := syncDir(filepath.Join(r.dir, sub)); err != nil {
		return classifyIO("filedrop_move", err)
	}
	if err := syncDir(r.dir); err != nil {
		return classifyIO("filedrop_move", err)
	}
	return nil
}

// freeName returns name, or name with a numeric suffix when dir has a file
// of that name already (the same envelope carried twice), so nothing in
// processed/ or quarantine/ is ever overwritten.
func freeName(dir, name string) string {
	ext := filepath.Ext(name)
	base := strings.TrimSuffix(name, ext)
	candidate := name
	for i := 1; ; i++ {
		_, err := os.Lstat(filepath.Join(dir, candidate))
		_, rerr := os.Lstat(filepath.Join(dir, candidate+".reason"))
		if errors.Is(err, fs.ErrNotExist) && errors.Is(rerr, fs.ErrNotExist) {
			return candidate
		}
		if (err != nil && !errors.Is(err, fs.ErrNotExist)) || (rerr != nil && !errors.Is(rerr, fs.ErrNotExist)) {
			return candidate // the move will fail and say why
		}
		candidate = fmt.Sprintf("%s.%d%s", base, i, ext)
	}
}

// Close stops the receiver; envelopes handed out and not acked stay in the
// incoming directory and are read again by the next Receiver.
func (r *Receiver) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return nil
}
