package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jirabridge/jirabridge/transport"
)

// env returns the full variable name of a setting, for messages.
func env(name string) string { return Prefix + "_" + name }

// Validate checks every setting and returns all problems joined
// (errors.Join), each naming the variable to set and how. It reads the CA
// files it is given, to catch a wrong path before the first connection.
func (c *Config) Validate() error {
	var v validator

	if strings.TrimSpace(c.DataDir) == "" {
		v.add("DATA_DIR is empty; set it to a writable directory (default ./data)")
	}
	switch c.Transport {
	case TransportMail, TransportFile:
	default:
		v.add("TRANSPORT=%q is not one of smtp+imap, file", c.Transport)
	}
	v.positive("POLL_INTERVAL", c.PollInterval, time.Second)
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "warning", "error":
	default:
		v.add("LOG_LEVEL=%q is not one of debug, info, warn, error", c.LogLevel)
	}
	switch c.LogFormat {
	case LogText, LogJSON:
	default:
		v.add("LOG_FORMAT=%q is not one of text, json", c.LogFormat)
	}
	if _, _, err := net.SplitHostPort(c.HTTPListen); err != nil {
		v.add("HTTP_LISTEN=%q is not host:port (e.g. 127.0.0.1:8080)", c.HTTPListen)
	}
	if t := c.StatusActionToken.Reveal(); t != "" && len(t) < 16 {
		v.add("STATUS_ACTION_TOKEN is shorter than 16 characters; use a long random value (e.g. openssl rand -hex 24)")
	}

	c.validateJira(&v)
	mailNeeded := c.Transport == TransportMail
	if mailNeeded || len(c.Ops.AlertTo) > 0 {
		c.validateSMTP(&v, mailNeeded)
	}
	switch c.Transport {
	case TransportMail:
		c.validateIMAP(&v)
	case TransportFile:
		c.validateFileDrop(&v)
	}
	c.validateOps(&v)
	c.validateTuning(&v)
	return errors.Join(v.errs...)
}

// Warnings lists settings that are allowed but weaken security; config
// check prints them.
func (c *Config) Warnings() []string {
	var w []string
	if c.Jira.DangerouslySkipTLSVerify {
		w = append(w, env("JIRA_TLS_DANGEROUSLY_SKIP_VERIFY")+"=true: Jira's certificate is not verified; anyone on the path can read the sync user's credentials")
	}
	if u, err := url.Parse(c.Jira.BaseURL); err == nil && u.Scheme == "http" && !transport.IsLoopbackHost(u.Hostname()) {
		w = append(w, env("JIRA_BASE_URL")+" uses http to a host that is not loopback; the sync user's credentials travel in clear text")
	}
	if host, _, err := net.SplitHostPort(c.HTTPListen); err == nil && !transport.IsLoopbackHost(host) && !c.StatusActionToken.IsSet() {
		w = append(w, env("HTTP_LISTEN")+" is not a loopback address and "+env("STATUS_ACTION_TOKEN")+" is unset: the status page is readable by others (actions stay disabled)")
	}
	return w
}

type validator struct{ errs []error }

// add records a problem; msg starts with the variable name without prefix.
func (v *validator) add(format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf(Prefix+"_"+format, args...))
}

func (v *validator) positive(name string, d, min time.Duration) {
	if d < min {
		v.add("%s=%s is too short; use at least %s", name, d, min)
	}
}

func (v *validator) required(name, value, hint string) bool {
	if strings.TrimSpace(value) == "" {
		v.add("%s is required %s", name, hint)
		return false
	}
	return true
}

func (v *validator) caFile(name, path string) {
	if path == "" {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		v.add("%s: %v", name, err)
		return
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		v.add("%s=%s holds no PEM certificate", name, path)
	}
}

func (v *validator) port(name string, p int) {
	if p < 1 || p > 65535 {
		v.add("%s=%d is not a port (1-65535)", name, p)
	}
}

func (v *validator) tls(group, host string, mode TLSMode) {
	switch mode {
	case TLSImplicit, TLSStartTLS:
	case TLSPlain:
		if host != "" && !transport.IsLoopbackHost(host) {
			v.add("%s_TLS_MODE=plain is only allowed for a loopback host; set it to starttls or tls", group)
		}
	default:
		v.add("%s_TLS_MODE=%q is not one of tls, starttls, plain", group, mode)
	}
}

func (v *validator) address(name, addr string) {
	if addr == "" {
		return
	}
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Name != "" || !strings.Contains(a.Address, "@") {
		v.add("%s=%q is not a plain mail address (user@example.org)", name, addr)
	}
}

func (c *Config) validateJira(v *validator) {
	j := c.Jira
	if v.required("JIRA_BASE_URL", j.BaseURL, "(e.g. https://jira.example.org)") {
		u, err := url.Parse(j.BaseURL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			v.add("JIRA_BASE_URL=%q is not an http(s) URL with a host", j.BaseURL)
		case u.User != nil:
			v.add("JIRA_BASE_URL must not contain credentials; set JIRABRIDGE_JIRA_PASSWORD or JIRABRIDGE_JIRA_TOKEN instead")
		case u.RawQuery != "" || u.Fragment != "":
			v.add("JIRA_BASE_URL=%q has a query or fragment; give the base URL only", j.BaseURL)
		}
	}
	v.required("JIRA_USER", j.User, "(the sync user the bridge acts as)")
	switch j.AuthMode {
	case AuthBasic:
		if !j.Password.IsSet() {
			v.add("JIRA_PASSWORD (or JIRABRIDGE_JIRA_PASSWORD_FILE) is required with JIRABRIDGE_JIRA_AUTH_MODE=basic")
		}
		if j.Token.IsSet() {
			v.add("JIRA_TOKEN is set but JIRABRIDGE_JIRA_AUTH_MODE=basic; set the auth mode to bearer or unset the token")
		}
	case AuthBearer:
		if !j.Token.IsSet() {
			v.add("JIRA_TOKEN (or JIRABRIDGE_JIRA_TOKEN_FILE) is required with JIRABRIDGE_JIRA_AUTH_MODE=bearer")
		}
		if j.Password.IsSet() {
			v.add("JIRA_PASSWORD is set but JIRABRIDGE_JIRA_AUTH_MODE=bearer; unset it or set the auth mode to basic")
		}
	default:
		v.add("JIRA_AUTH_MODE=%q is not one of basic, bearer", j.AuthMode)
	}
	v.caFile("JIRA_CA_FILE", j.CAFile)
	if j.CAFile != "" && j.DangerouslySkipTLSVerify {
		v.add("JIRA_TLS_DANGEROUSLY_SKIP_VERIFY and JIRABRIDGE_JIRA_CA_FILE are both set; keep the CA file and unset the skip")
	}
	v.positive("JIRA_TIMEOUT", j.Timeout, time.Second)
}

// validateSMTP checks the mail path out; peer says whether envelopes go to
// the peer (else it only carries alert mail).
func (c *Config) validateSMTP(v *validator, peer bool) {
	s := c.SMTP
	why := "(transport smtp+imap)"
	if !peer {
		why = "(alert mail to JIRABRIDGE_OPS_ALERT_TO is sent through SMTP)"
	}
	v.required("SMTP_HOST", s.Host, why)
	v.port("SMTP_PORT", s.Port)
	v.tls("SMTP", s.Host, s.TLSMode)
	if s.User == "" && s.Password.IsSet() {
		v.add("SMTP_PASSWORD is set but JIRABRIDGE_SMTP_USER is empty; set both or neither")
	}
	if s.User != "" && !s.Password.IsSet() {
		v.add("SMTP_PASSWORD (or JIRABRIDGE_SMTP_PASSWORD_FILE) is required when JIRABRIDGE_SMTP_USER is set")
	}
	v.caFile("SMTP_CA_FILE", s.CAFile)
	if v.required("SMTP_FROM", s.From, why) {
		v.address("SMTP_FROM", s.From)
	}
	if peer {
		if v.required("SMTP_PEER_ADDRESS", s.PeerAddress, "(the peer bridge's mailbox)") {
			v.address("SMTP_PEER_ADDRESS", s.PeerAddress)
			if strings.EqualFold(s.PeerAddress, s.From) {
				v.add("SMTP_PEER_ADDRESS equals JIRABRIDGE_SMTP_FROM; each bridge needs its own mailbox")
			}
		}
	}
	if s.MaxMessageSize < 64<<10 {
		v.add("SMTP_MAX_MESSAGE_SIZE=%s is too small; use at least 64KiB", s.MaxMessageSize)
	}
}

func (c *Config) validateIMAP(v *validator) {
	m := c.IMAP
	v.required("IMAP_HOST", m.Host, "(transport smtp+imap)")
	v.port("IMAP_PORT", m.Port)
	v.tls("IMAP", m.Host, m.TLSMode)
	v.required("IMAP_USER", m.User, "(transport smtp+imap)")
	if !m.Password.IsSet() {
		v.add("IMAP_PASSWORD (or JIRABRIDGE_IMAP_PASSWORD_FILE) is required (transport smtp+imap)")
	}
	v.caFile("IMAP_CA_FILE", m.CAFile)
	v.required("IMAP_MAILBOX", m.Mailbox, "(default INBOX)")
	v.required("IMAP_QUARANTINE_FOLDER", m.QuarantineFolder, "(default jirabridge/quarantine)")
	switch m.AfterStore {
	case AfterStoreMove:
		if v.required("IMAP_PROCESSED_FOLDER", m.ProcessedFolder, "with JIRABRIDGE_IMAP_AFTER_STORE=move") &&
			strings.EqualFold(m.ProcessedFolder, m.Mailbox) {
			v.add("IMAP_PROCESSED_FOLDER equals JIRABRIDGE_IMAP_MAILBOX; choose another folder")
		}
		if strings.EqualFold(m.ProcessedFolder, m.QuarantineFolder) && m.ProcessedFolder != "" {
			v.add("IMAP_PROCESSED_FOLDER equals JIRABRIDGE_IMAP_QUARANTINE_FOLDER; keep them apart")
		}
	case AfterStoreDelete:
	default:
		v.add("IMAP_AFTER_STORE=%q is not one of move, delete", m.AfterStore)
	}
	if m.QuarantineFolder != "" && strings.EqualFold(m.QuarantineFolder, m.Mailbox) {
		v.add("IMAP_QUARANTINE_FOLDER equals JIRABRIDGE_IMAP_MAILBOX; choose another folder")
	}
}

func (c *Config) validateFileDrop(v *validator) {
	f := c.FileDrop
	out := v.required("FILEDROP_OUTGOING_DIR", f.OutgoingDir, "(transport file)")
	in := v.required("FILEDROP_INCOMING_DIR", f.IncomingDir, "(transport file)")
	if out && in && cleanPath(f.OutgoingDir) == cleanPath(f.IncomingDir) {
		v.add("FILEDROP_OUTGOING_DIR and JIRABRIDGE_FILEDROP_INCOMING_DIR are the same directory; the bridge would read its own envelopes")
	}
}

func cleanPath(p string) string {
	return strings.TrimRight(strings.TrimSpace(p), "/")
}

func (c *Config) validateOps(v *validator) {
	for _, a := range c.Ops.AlertTo {
		v.address("OPS_ALERT_TO", a)
	}
	if w := c.Ops.WebhookURL.Reveal(); w != "" {
		// The URL may carry a token: never echo it.
		u, err := url.Parse(w)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			v.add("OPS_WEBHOOK_URL is not an http(s) URL with a host")
		}
	}
	v.positive("OPS_ALERT_REPEAT_INTERVAL", c.Ops.AlertRepeatInterval, time.Minute)
	v.positive("OPS_OUTBOX_AGE_THRESHOLD", c.Ops.OutboxAgeThreshold, time.Minute)
}

func (c *Config) validateTuning(v *validator) {
	t := c.Tuning
	v.positive("RETENTION", t.Retention, time.Hour)
	if t.ReplayWorkers < 1 || t.ReplayWorkers > 64 {
		v.add("REPLAY_WORKERS=%d is out of range; use 1 to 64", t.ReplayWorkers)
	}
	v.positive("HEARTBEAT_INTERVAL", t.HeartbeatInterval, time.Second)
	if t.HeartbeatInterval > 0 && t.PeerSilenceThreshold < 2*t.HeartbeatInterval {
		v.add("PEER_SILENCE_THRESHOLD=%s must be at least twice JIRABRIDGE_HEARTBEAT_INTERVAL (%s)", t.PeerSilenceThreshold, t.HeartbeatInterval)
	}
	v.positive("GAP_RESEND_TIMEOUT", t.GapResendTimeout, time.Second)
	if t.AckDelay < 0 {
		v.add("ACK_DELAY=%s is negative", t.AckDelay)
	}
	if t.BatchMaxChanges < 1 {
		v.add("BATCH_MAX_CHANGES=%d must be at least 1", t.BatchMaxChanges)
	}
	if t.BatchMaxBytes < 1<<10 {
		v.add("BATCH_MAX_BYTES=%s is too small; use at least 1KiB", t.BatchMaxBytes)
	}
	// A sealed body is base64-encoded in the mail (4/3) plus headers.
	if c.Transport == TransportMail && c.SMTP.MaxMessageSize >= 64<<10 {
		if limit := (c.SMTP.MaxMessageSize - 32<<10) * 3 / 4; t.BatchMaxBytes > limit {
			v.add("BATCH_MAX_BYTES=%s does not fit in a mail of JIRABRIDGE_SMTP_MAX_MESSAGE_SIZE=%s once encoded; use at most %d", t.BatchMaxBytes, c.SMTP.MaxMessageSize, int64(limit))
		}
	}
	if t.BatchLinger < 0 {
		v.add("BATCH_LINGER=%s is negative", t.BatchLinger)
	}
}
