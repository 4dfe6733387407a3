package transport

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeMail feeds the parser arbitrary mail. Its seed corpus (every
// .eml in testdata/) runs in every go test. DecodeMail must never panic, and
// must either fail with a *DecodeError or return a valid Meta and a
// non-empty envelope.
func FuzzDecodeMail(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(""))
	f.Add([]byte("\r\n\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		meta, sealed, err := DecodeOptions{MaxSize: 1 << 20}.Decode(raw)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error is not a *DecodeError: %v", err)
			}
			if !errors.Is(err, ErrNotJirabridge) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error matches neither sentinel: %v", err)
			}
			if DecodeReason(err) == "" {
				t.Fatalf("error without reason: %v", err)
			}
			return
		}
		if len(sealed) == 0 {
			t.Fatal("success with an empty envelope")
		}
		if err := checkMeta(meta); err != nil {
			t.Fatalf("success with invalid meta: %v", err)
		}
	})
}

// FuzzEncodeDecode checks that whatever EncodeMail accepts, DecodeMail
// gives back unchanged.
func FuzzEncodeDecode(f *testing.F) {
	f.Add("support-dev", "Support ⇄ Dev", "node-a", uint64(42), KindChanges, []byte{0, 1, 2, 255})
	f.Add("s", "", "n", uint64(0), KindHandshake, []byte("x"))
	f.Add("s.1", "name #7", "n_2", ^uint64(0), KindControl, bytes.Repeat([]byte{'-'}, 200))
	f.Fuzz(func(t *testing.T, sync, name, sender string, seq uint64, kind string, sealed []byte) {
		in := Outgoing{Meta: Meta{Sync: sync, SyncName: name, Sender: sender, Seq: seq, Kind: kind}, Sealed: sealed}
		raw, err := EncodeMail(in, goldenHeader())
		if err != nil {
			return
		}
		meta, got, err := DecodeMail(raw)
		if err != nil {
			t.Fatalf("DecodeMail of EncodeMail output: %v\n%s", err, raw)
		}
		want := in.Meta
		if want.SyncName == "" {
			want.SyncName = want.Sync
		}
		if meta != want {
			t.Errorf("meta = %+v, want %+v", meta, want)
		}
		if !bytes.Equal(got, sealed) {
			t.Error("sealed bytes changed in a round trip")
		}
	})
}

func TestDecodeMailTooLarge(t *testing.T) {
	t.Parallel()
	raw := readTestdata(t, "envelope.eml")
	_, _, err := DecodeOptions{MaxSize: len(raw) - 1}.Decode(raw)
	if got := DecodeReason(err); got != ReasonTooLarge {
		t.Errorf("reason = %q, want %q", got, ReasonTooLarge)
	}
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("errors.Is(err, ErrMalformed) = false: %v", err)
	}
	if _, _, err := (DecodeOptions{MaxSize: len(raw)}).Decode(raw); err != nil {
		t.Errorf("mail of exactly MaxSize rejected: %v", err)
	}
}
