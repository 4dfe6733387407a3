// Package templates holds the human-readable texts the bridge produces: the
// text part of every envelope mail, and later alert mails and the status
// page. The files are embedded so that the binary carries them and an
// operator cannot lose them; each has a typed render function so a missing
// field is a compile error rather than an empty line in a mail.
//
// Files named *.txt.tmpl are text/template; other kinds (for example
// *.html.tmpl parsed with html/template) can be added next to them.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"text/template"
)

//go:embed *.tmpl
var files embed.FS

// FS returns the embedded template files, for packages that parse their own
// kind of template (html/template for the status page).
func FS() fs.FS { return files }

// Text is the parsed set of text templates. It is immutable once parsed and
// safe for concurrent use.
type Text struct {
	t *template.Template
}

// ParseText parses every embedded *.txt.tmpl file. It fails only when an
// embedded file is broken, which the package tests catch.
func ParseText() (*Text, error) {
	t, err := template.New("").Option("missingkey=error").ParseFS(files, "*.txt.tmpl")
	if err != nil {
		return nil, fmt.Errorf("parse embedded text templates: %w", err)
	}
	return &Text{t: t}, nil
}

func (x *Text) render(name string, data any) (string, error) {
	var b bytes.Buffer
	if err := x.t.ExecuteTemplate(&b, name, data); err != nil {
		return "", fmt.Errorf("render template %s: %w", name, err)
	}
	return b.String(), nil
}

// EnvelopeMail is what the text part of an envelope mail may show. It holds
// routing facts only: the payload is encrypted and no issue data may appear
// in clear text.
type EnvelopeMail struct {
	SyncName string // human name of the sync
	Sync     string // sync id
	Sender   string // sending node id
	Seq      uint64 // sequence number in the sender's direction
	Kind     string // changes, control, config, handshake
	Filename string // name of the attachment holding the sealed envelope
}

// EnvelopeMail renders the text part of an envelope mail.
func (x *Text) EnvelopeMail(d EnvelopeMail) (string, error) {
	return x.render("envelope_mail.txt.tmpl", d)
}
