package transport

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/jirabridge/jirabridge/templates"
)

// EnvelopeContentType is the MIME type of the attachment that holds the
// sealed envelope.
const EnvelopeContentType = "application/vnd.jirabridge.envelope"

// Header names of the routing hints a mail carries.
const (
	HeaderSync   = "X-Jirabridge-Sync"
	HeaderSeq    = "X-Jirabridge-Seq"
	HeaderKind   = "X-Jirabridge-Kind"
	HeaderSender = "X-Jirabridge-Sender"
)

// MessageIDDomain is the domain part of every envelope mail's Message-ID. It
// is reserved (RFC 2606) so the id never collides with a real host's ids.
const MessageIDDomain = "jirabridge.invalid"

// DefaultMaxMailSize is the largest raw mail DecodeMail accepts unless told
// otherwise. It is above the 10 MB the SMTP sender allows by default, so
// that what a mail server accepted with its own headers added still decodes.
const DefaultMaxMailSize = 32 << 20

// parsedTexts parses the embedded templates once; they never change at run
// time, and parsing them for every mail would be waste.
var parsedTexts = sync.OnceValues(templates.ParseText)

// MailHeader is what a mail says about its addressing. It is passed in, not
// read from the clock or the configuration, so that the same input always
// encodes to the same bytes.
type MailHeader struct {
	From string    // RFC 5322 address, e.g. "Bridge A <bridge-a@example.com>"
	To   []string  // at least one address
	Date time.Time // zero means the current time
}

// MessageID returns the Message-ID (without angle brackets) of the mail that
// carries envelope seq of sender in sync. It is a pure function of the three
// so that a resent envelope has the same id and mail servers and clients see
// a duplicate, not a new message.
func MessageID(m Meta) string {
	return fmt.Sprintf("%d.%s.%s@%s", m.Seq, m.Sender, m.Sync, MessageIDDomain)
}

// EnvelopeFilename returns the attachment name of the envelope.
func EnvelopeFilename(m Meta) string {
	return fmt.Sprintf("jirabridge-%s-%d.jbe", m.Sync, m.Seq)
}

// Subject returns the subject line of the mail that carries m.
func Subject(m Meta) string {
	name := m.SyncName
	if name == "" {
		name = m.Sync
	}
	return fmt.Sprintf("[jirabridge] %s #%d", name, m.Seq)
}

// idPattern limits sync and sender ids to characters that are safe in a
// header, a Message-ID and a file name.
// It is a dot-atom (RFC 5322) so the Message-ID stays valid.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$`)

func validID(id string) bool { return len(id) <= 128 && idPattern.MatchString(id) }

func validKind(k string) bool {
	switch k {
	case KindChanges, KindControl, KindConfig, KindHandshake:
		return true
	}
	return false
}

// checkMeta reports what is wrong with m as routing information.
func checkMeta(m Meta) error {
	if !validID(m.Sync) {
		return fmt.Errorf("sync id %q: want 1 to 128 of A-Z a-z 0-9 _ - and single dots, starting with a letter, digit or _", m.Sync)
	}
	if !validID(m.Sender) {
		return fmt.Errorf("sender id %q: want 1 to 128 of A-Z a-z 0-9 _ - and single dots, starting with a letter, digit or _", m.Sender)
	}
	if !validKind(m.Kind) {
		return fmt.Errorf("kind %q: want one of %s, %s, %s, %s", m.Kind, KindChanges, KindControl, KindConfig, KindHandshake)
	}
	if strings.ContainsAny(m.SyncName, "\r\n") {
		return fmt.Errorf("sync name %q contains a line break", m.SyncName)
	}
	return nil
}

// EncodeMail renders the mail that carries one sealed envelope: a
// multipart/mixed mail whose first part is a short text for a person who
// opens the mailbox and whose second part is the envelope as a base64
// attachment. The output depends only on m and h, so a golden file can pin
// it byte for byte.
func EncodeMail(m Outgoing, h MailHeader) ([]byte, error) {
	if err := checkMeta(m.Meta); err != nil {
		return nil, fmt.Errorf("encode mail: %w", err)
	}
	if len(m.Sealed) == 0 {
		return nil, errors.New("encode mail: empty sealed envelope")
	}
	from, err := mail.ParseAddress(h.From)
	if err != nil {
		return nil, fmt.Errorf("encode mail: from address %q: %w", h.From, err)
	}
	if len(h.To) == 0 {
		return nil, errors.New("encode mail: no recipient address")
	}
	to := make([]*mail.Address, 0, len(h.To))
	for _, a := range h.To {
		addr, err := mail.ParseAddress(a)
		if err != nil {
			return nil, fmt.Errorf("encode mail: to address %q: %w", a, err)
		}
		to = append(to, addr)
	}
	date := h.Date
	if date.IsZero() {
		date = time.Now()
	}

	texts, err := parsedTexts()
	if err != nil {
		return nil, fmt.Errorf("encode mail: %w", err)
	}
	filename := EnvelopeFilename(m.Meta)
	syncName := m.SyncName
	if syncName == "" {
		syncName = m.Sync
	}
	body, err := texts.EnvelopeMail(templates.EnvelopeMail{
		SyncName: syncName, Sync: m.Sync, Sender: m.Sender, Seq: m.Seq,
		Kind: m.Kind, Filename: filename,
	})
	if err != nil {
		return nil, fmt.Errorf("encode mail: %w", err)
	}

	// The boundary is derived from the content so the output is
	// deterministic; base64 never contains '-' and the text part does not
	// contain the hash, so it cannot collide with the content.
	sum := sha256.Sum256(m.Sealed)
	boundary := "jirabridge-" + hex.EncodeToString(sum[:12])

	// go-message writes header fields in the reverse order of addition;
	// add them bottom-up so the mail reads top-down in the usual order.
	var mh mail.Header
	mh.Set("Content-Type", "multipart/mixed; boundary=\""+boundary+"\"")
	mh.Set("MIME-Version", "1.0")
	mh.Set(HeaderKind, m.Kind)
	mh.Set(HeaderSeq, strconv.FormatUint(m.Seq, 10))
	mh.Set(HeaderSender, m.Sender)
	mh.Set(HeaderSync, m.Sync)
	mh.Set("Message-Id", "<"+MessageID(m.Meta)+">")
	mh.SetSubject(Subject(m.Meta))
	mh.SetAddressList("To", to)
	mh.SetAddressList("From", []*mail.Address{from})
	mh.SetDate(date)

	var buf bytes.Buffer
	w, err := message.CreateWriter(&buf, mh.Header)
	if err != nil {
		return nil, fmt.Errorf("encode mail: write header: %w", err)
	}

	var th message.Header
	th.Set("Content-Transfer-Encoding", "quoted-printable")
	th.Set("Content-Disposition", "inline")
	th.Set("Content-Type", "text/plain; charset=utf-8")
	tw, err := w.CreatePart(th)
	if err != nil {
		return nil, fmt.Errorf("encode mail: create text part: %w", err)
	}
	if _, err := io.WriteString(tw, body); err != nil {
		return nil, fmt.Errorf("encode mail: write text part: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("encode mail: close text part: %w", err)
	}

	var ah message.Header
	ah.Set("Content-Transfer-Encoding", "base64")
	ah.SetContentDisposition("attachment", map[string]string{"filename": filename})
	ah.SetContentType(EnvelopeContentType, map[string]string{"name": filename})
	aw, err := w.CreatePart(ah)
	if err != nil {
		return nil, fmt.Errorf("encode mail: create envelope part: %w", err)
	}
	if _, err := aw.Write(m.Sealed); err != nil {
		return nil, fmt.Errorf("encode mail: write envelope part: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("encode mail: close envelope part: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encode mail: close: %w", err)
	}
	return buf.Bytes(), nil
}

// Reasons a mail is rejected by DecodeMail. They are snake_case labels for
// logs, metrics, quarantine sidecars and alerts.
const (
	ReasonTooLarge             = "too_large"               // raw mail above the size limit
	ReasonBadHeaders           = "bad_headers"             // the header block cannot be parsed
	ReasonNotMultipart         = "not_multipart"           // not a multipart mail
	ReasonBadMIME              = "bad_mime"                // the multipart structure is broken
	ReasonTruncated            = "truncated"               // the mail ends before its closing boundary
	ReasonTooManyParts         = "too_many_parts"          // more parts or nesting than any envelope mail has
	ReasonNoEnvelopePart       = "no_envelope_part"        // no attachment of EnvelopeContentType
	ReasonSeveralEnvelopeParts = "several_envelope_parts"  // more than one envelope attachment
	ReasonBadTransferEncoding  = "bad_transfer_encoding"   // the envelope part does not decode
	ReasonEmptyEnvelope        = "empty_envelope"          // the envelope part is empty
	ReasonMissingMeta          = "missing_meta"            // X-Jirabridge-* headers are missing
	ReasonBadMeta              = "bad_meta"                // an X-Jirabridge-* header has an invalid value
	ReasonMetaMismatch         = "meta_mismatch"           // headers, subject or Message-ID disagree
	ReasonBadForward           = "bad_forwarded_mail"      // a forwarded mail inside does not decode
	reasonUnknown              = "unclassified_mime_error" // for errors without a reason; not expected
)

// Sentinels for errors.Is on DecodeMail errors.
var (
	// ErrNotJirabridge: the mail carries no sign of being a jirabridge
	// envelope (no X-Jirabridge headers and no envelope part). Unrelated
	// mail: quarantine it and report it; never delete it.
	ErrNotJirabridge = errors.New("not a jirabridge mail")
	// ErrMalformed: the mail claims to be a jirabridge envelope but is
	// broken, or was changed in a way the codec does not accept.
	ErrMalformed = errors.New("malformed jirabridge mail")
)

// DecodeError is the error of DecodeMail. Reason is one of the Reason
// constants; errors.Is matches ErrNotJirabridge or ErrMalformed, and another
// *DecodeError with the same Reason.
type DecodeError struct {
	Reason string
	// Foreign is true when the mail shows no sign of being a jirabridge
	// mail at all; then errors.Is(err, ErrNotJirabridge) holds.
	Foreign bool
	Err     error
}

func (e *DecodeError) Error() string {
	kind := ErrMalformed.Error()
	if e.Foreign {
		kind = ErrNotJirabridge.Error()
	}
	if e.Err == nil {
		return "decode mail: " + kind + ": " + e.Reason
	}
	return "decode mail: " + kind + ": " + e.Reason + ": " + e.Err.Error()
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Is matches the class sentinels and a *DecodeError with the same reason.
func (e *DecodeError) Is(target error) bool {
	switch target {
	case ErrNotJirabridge:
		return e.Foreign
	case ErrMalformed:
		return !e.Foreign
	}
	if t, ok := target.(*DecodeError); ok {
		return t.Reason == e.Reason
	}
	return false
}

// DecodeReason returns the reason label of a DecodeMail error, or "" when
// err is not one.
func DecodeReason(err error) string {
	var e *DecodeError
	if errors.As(err, &e) {
		if e.Reason == "" {
			return reasonUnknown
		}
		return e.Reason
	}
	return ""
}

// DecodeOptions tunes DecodeMail. The zero value is the default.
type DecodeOptions struct {
	// MaxSize is the largest raw mail accepted, in bytes; 0 means
	// DefaultMaxMailSize.
	MaxSize int
}

// Limits on structure: an envelope mail has two parts and no nesting; a
// list or gateway may add a footer part or wrap the mail once more, and a
// person may forward it as an attachment.
const (
	maxParts        = 32
	maxDepth        = 4
	maxForwardDepth = 2
)

// DecodeMail extracts the sealed envelope and the header hints from a raw
// mail, with the default options. See DecodeOptions.Decode.
func DecodeMail(raw []byte) (Meta, []byte, error) {
	return DecodeOptions{}.Decode(raw)
}

// Decode extracts the sealed envelope and the header hints from a raw mail.
//
// It tolerates what mail servers, lists and gateways do to a mail on its
// way: added header fields, re-folded header lines, CRLF or LF line endings,
// header name case changes, a footer added as an extra text part, inside the
// text part or after the closing boundary, another wrapping multipart level,
// the envelope part re-encoded as quoted-printable, 7bit or base64 with
// other line lengths, and the mail forwarded as a message/rfc822 attachment.
// Anything else is a *DecodeError with a reason; the sealed bytes are still
// to be verified by package wire, as the headers are hints only.
func (o DecodeOptions) Decode(raw []byte) (Meta, []byte, error) {
	max := o.MaxSize
	if max <= 0 {
		max = DefaultMaxMailSize
	}
	if len(raw) > max {
		// Look at the header only, to tell an oversized envelope from
		// some unrelated big mail.
		foreign := true
		if th, err := textproto.ReadHeader(bufioReader(raw[:min(len(raw), 1<<20)])); err == nil {
			foreign = !hasMetaHeaders(message.Header{Header: th})
		}
		return Meta{}, nil, &DecodeError{Reason: ReasonTooLarge, Foreign: foreign, Err: fmt.Errorf("mail of %d bytes exceeds the limit of %d bytes", len(raw), max)}
	}
	return decode(raw, 0)
}

// found is what a walk over the MIME tree collected.
type found struct {
	envelopes []foundPart
	forwards  [][]byte
	parts     int
}

type foundPart struct {
	header message.Header
	body   []byte
	err    error // transfer decoding error
}

func decode(raw []byte, forwardDepth int) (Meta, []byte, error) {
	// A mail saved by a client in mbox style starts with a "From " line
	// that is not a header field.
	if bytes.HasPrefix(raw, []byte("From ")) {
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			raw = raw[i+1:]
		}
	}
	// Split the header ourselves so a malformed header block is reported
	// as such, and an LF-only mail reads like a CRLF one.
	br := bufioReader(raw)
	th, err := textproto.ReadHeader(br)
	if err != nil {
		return Meta{}, nil, &DecodeError{Reason: ReasonBadHeaders, Err: err}
	}
	h := message.Header{Header: th}
	hasMeta := hasMetaHeaders(h)

	ent, err := message.New(h, br)
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return Meta{}, nil, &DecodeError{Reason: ReasonBadMIME, Foreign: !hasMeta, Err: err}
	}
	mr := ent.MultipartReader()
	if mr == nil {
		return Meta{}, nil, &DecodeError{Reason: ReasonNotMultipart, Foreign: !hasMeta, Err: fmt.Errorf("content type %q", h.Get("Content-Type"))}
	}
	var f found
	if err := walk(mr, &f, 1); err != nil {
		var de *DecodeError
		if errors.As(err, &de) {
			de.Foreign = !hasMeta && len(f.envelopes) == 0
			return Meta{}, nil, de
		}
		return Meta{}, nil, &DecodeError{Reason: ReasonBadMIME, Foreign: !hasMeta && len(f.envelopes) == 0, Err: err}
	}

	if !hasMeta && len(f.envelopes) == 0 {
		if len(f.forwards) == 1 && forwardDepth < maxForwardDepth {
			meta, sealed, err := decode(f.forwards[0], forwardDepth+1)
			if err != nil {
				var de *DecodeError
				if errors.As(err, &de) && de.Foreign {
					return Meta{}, nil, de
				}
				return Meta{}, nil, &DecodeError{Reason: ReasonBadForward, Err: err}
			}
			return meta, sealed, nil
		}
		return Meta{}, nil, &DecodeError{Reason: ReasonNoEnvelopePart, Foreign: true, Err: errors.New("no jirabridge headers and no envelope attachment")}
	}
	switch n := len(f.envelopes); {
	case n == 0:
		return Meta{}, nil, &DecodeError{Reason: ReasonNoEnvelopePart, Err: fmt.Errorf("no %s attachment", EnvelopeContentType)}
	case n > 1:
		return Meta{}, nil, &DecodeError{Reason: ReasonSeveralEnvelopeParts, Err: fmt.Errorf("%d envelope attachments", n)}
	}
	env := f.envelopes[0]
	if env.err != nil {
		return Meta{}, nil, &DecodeError{Reason: ReasonBadTransferEncoding, Err: env.err}
	}
	if len(env.body) == 0 {
		return Meta{}, nil, &DecodeError{Reason: ReasonEmptyEnvelope, Err: errors.New("envelope attachment is empty")}
	}
	meta, err := metaFrom(h, env.header)
	if err != nil {
		return Meta{}, nil, err
	}
	return meta, env.body, nil
}

func hasMetaHeaders(h message.Header) bool {
	return h.Has(HeaderSync) || h.Has(HeaderSeq) || h.Has(HeaderKind) || h.Has(HeaderSender)
}

func walk(mr message.MultipartReader, f *found, depth int) error {
	if depth > maxDepth {
		return &DecodeError{Reason: ReasonTooManyParts, Err: fmt.Errorf("multipart nesting deeper than %d", maxDepth)}
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil && !message.IsUnknownEncoding(err) && !message.IsUnknownCharset(err) {
			if strings.Contains(err.Error(), "EOF") {
				return &DecodeError{Reason: ReasonTruncated, Err: err}
			}
			return &DecodeError{Reason: ReasonBadMIME, Err: err}
		}
		f.parts++
		if f.parts > maxParts {
			return &DecodeError{Reason: ReasonTooManyParts, Err: fmt.Errorf("more than %d parts", maxParts)}
		}
		encErr := err
		if message.IsUnknownCharset(err) {
			encErr = nil // charsets matter for text only, which is ignored
		}
		if sub := p.MultipartReader(); sub != nil {
			if err := walk(sub, f, depth+1); err != nil {
				return err
			}
			continue
		}
		t, params, _ := p.Header.ContentType()
		switch {
		case isEnvelopePart(p.Header, t, params):
			fp := foundPart{header: p.Header, err: encErr}
			if encErr == nil {
				body, err := io.ReadAll(p.Body)
				if err != nil {
					if isTruncation(err) {
						return &DecodeError{Reason: ReasonTruncated, Err: err}
					}
					fp.err = err
				}
				fp.body = body
			}
			f.envelopes = append(f.envelopes, fp)
		case t == "message/rfc822" && encErr == nil:
			body, err := io.ReadAll(p.Body)
			if err != nil {
				if isTruncation(err) {
					return &DecodeError{Reason: ReasonTruncated, Err: err}
				}
				return &DecodeError{Reason: ReasonBadForward, Err: err}
			}
			f.forwards = append(f.forwards, body)
		default:
			// Text, footers, anything else: read through to find the
			// next boundary, and note a broken structure.
			if _, err := io.Copy(io.Discard, p.Body); err != nil && isTruncation(err) {
				return &DecodeError{Reason: ReasonTruncated, Err: err}
			}
		}
	}
}

func isTruncation(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "EOF")
}

// isEnvelopePart recognises the envelope attachment by its content type, or
// by its file name when a gateway re-typed it as application/octet-stream.
func isEnvelopePart(h message.Header, t string, params map[string]string) bool {
	if t == EnvelopeContentType {
		return true
	}
	if t != "application/octet-stream" {
		return false
	}
	ah := mail.AttachmentHeader{Header: h}
	name, _ := ah.Filename()
	if name == "" {
		name = params["name"]
	}
	return strings.HasPrefix(name, "jirabridge-") && strings.HasSuffix(name, ".jbe")
}

var subjectPattern = regexp.MustCompile(`\[jirabridge\] (.*) #([0-9]+)\s*$`)

// metaFrom reads the routing hints and checks that the mail agrees with
// itself: headers, subject, Message-ID (when it is still ours) and the
// attachment name.
func metaFrom(h message.Header, env message.Header) (Meta, error) {
	var m Meta
	for _, f := range []struct {
		name string
		dst  *string
	}{{HeaderSync, &m.Sync}, {HeaderSender, &m.Sender}, {HeaderKind, &m.Kind}} {
		v, err := single(h, f.name)
		if err != nil {
			return Meta{}, err
		}
		*f.dst = v
	}
	seq, err := single(h, HeaderSeq)
	if err != nil {
		return Meta{}, err
	}
	m.Seq, err = strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return Meta{}, &DecodeError{Reason: ReasonBadMeta, Err: fmt.Errorf("%s %q is not a sequence number", HeaderSeq, seq)}
	}
	if err := checkMeta(m); err != nil {
		return Meta{}, &DecodeError{Reason: ReasonBadMeta, Err: err}
	}

	mh := mail.Header{Header: h}
	if subject, err := mh.Subject(); err == nil {
		if sm := subjectPattern.FindStringSubmatch(subject); sm != nil {
			m.SyncName = sm[1]
			if sm[2] != strconv.FormatUint(m.Seq, 10) {
				return Meta{}, &DecodeError{Reason: ReasonMetaMismatch, Err: fmt.Errorf("subject says #%s, %s says %d", sm[2], HeaderSeq, m.Seq)}
			}
		}
	}
	if id, err := mh.MessageID(); err == nil && strings.HasSuffix(id, "@"+MessageIDDomain) && id != MessageID(m) {
		return Meta{}, &DecodeError{Reason: ReasonMetaMismatch, Err: fmt.Errorf("Message-ID <%s> does not match the headers (want <%s>)", id, MessageID(m))}
	}
	ah := mail.AttachmentHeader{Header: env}
	if name, err := ah.Filename(); err == nil && name != "" && strings.HasPrefix(name, "jirabridge-") && name != EnvelopeFilename(m) {
		return Meta{}, &DecodeError{Reason: ReasonMetaMismatch, Err: fmt.Errorf("attachment %q does not match the headers (want %q)", name, EnvelopeFilename(m))}
	}
	return m, nil
}

// single returns the one value of header k. A list may duplicate a header
// field; identical copies are fine, differing ones are not.
func single(h message.Header, k string) (string, error) {
	vs := h.Values(k)
	if len(vs) == 0 {
		return "", &DecodeError{Reason: ReasonMissingMeta, Err: fmt.Errorf("no %s header", k)}
	}
	v := strings.TrimSpace(vs[0])
	for _, o := range vs[1:] {
		if strings.TrimSpace(o) != v {
			return "", &DecodeError{Reason: ReasonMetaMismatch, Err: fmt.Errorf("%s header appears with different values %q and %q", k, v, strings.TrimSpace(o))}
		}
	}
	return v, nil
}

func bufioReader(raw []byte) *bufio.Reader {
	return bufio.NewReader(bytes.NewReader(raw))
}
