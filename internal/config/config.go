// Package config reads a bridge's process settings from the environment
// (prefix JIRABRIDGE_, see docs/configuration.md) and its sync definition
// file (see docs/sync-definition.md), and validates both, reporting every
// problem at once with the variable or line to fix.
package config

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Prefix is the prefix of every environment variable the bridge reads.
const Prefix = "JIRABRIDGE"

// TransportKind says how envelopes travel to the peer.
type TransportKind string

// Transport kinds.
const (
	TransportMail TransportKind = "smtp+imap" // SMTP out, IMAP in
	TransportFile TransportKind = "file"      // files in two directories
)

// AuthMode says how the bridge authenticates to Jira.
type AuthMode string

// Jira authentication modes.
const (
	AuthBasic  AuthMode = "basic"  // user + password (JIRABRIDGE_JIRA_PASSWORD)
	AuthBearer AuthMode = "bearer" // personal access token (JIRABRIDGE_JIRA_TOKEN)
)

// TLSMode says how a mail connection is protected.
type TLSMode string

// TLS modes for SMTP and IMAP.
const (
	TLSImplicit TLSMode = "tls"      // TLS from the first byte (SMTPS 465, IMAPS 993)
	TLSStartTLS TLSMode = "starttls" // plain connect, STARTTLS required before auth
	TLSPlain    TLSMode = "plain"    // no TLS; only allowed to a loopback host
)

// AfterStore says what the IMAP receiver does with a mail once the inbox has
// stored its envelope.
type AfterStore string

// After-store actions.
const (
	AfterStoreMove   AfterStore = "move"   // move to JIRABRIDGE_IMAP_PROCESSED_FOLDER
	AfterStoreDelete AfterStore = "delete" // flag \Deleted and expunge
)

// LogFormat selects the slog handler.
type LogFormat string

// Log formats.
const (
	LogText LogFormat = "text"
	LogJSON LogFormat = "json"
)

// Config is every process setting of one bridge. Load fills it from the
// environment; Defaults gives one with only the defaults, for code (the
// demo, tests) that builds a configuration by hand and then calls Validate.
//
// Variable names are derived by envconfig from the field names (split_words)
// under the prefix JIRABRIDGE_ and the group's name: Config.SMTP.TLSMode is
// JIRABRIDGE_SMTP_TLS_MODE. Every Secret field also has a _FILE variant.
type Config struct {
	// DataDir holds the database and keys.
	DataDir string `split_words:"true" default:"./data" desc:"directory for the database and keys"`
	// Transport is smtp+imap or file.
	Transport TransportKind `default:"smtp+imap" desc:"how envelopes travel: smtp+imap or file"`
	// SyncFile is the sync definition (YAML); empty means not configured.
	SyncFile string `split_words:"true" desc:"path of the sync definition file (YAML)"`
	// PollInterval is how often the local Jira is polled for changes.
	PollInterval time.Duration `split_words:"true" default:"5s" desc:"how often the local Jira is polled for changes"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `split_words:"true" default:"info" desc:"debug, info, warn or error"`
	// LogFormat is text or json.
	LogFormat LogFormat `split_words:"true" default:"text" desc:"text or json"`
	// HTTPListen serves /healthz, /readyz, /metrics and the status page.
	HTTPListen string `split_words:"true" default:"127.0.0.1:8080" desc:"listen address of the status page, metrics and health endpoints"`
	// StatusActionToken must accompany Retry/Skip actions on the status
	// page; empty means the page is read-only.
	StatusActionToken Secret `split_words:"true" desc:"token for Retry/Skip on the status page (at least 16 characters); empty: read-only"`

	Jira     Jira
	SMTP     SMTP
	IMAP     IMAP
	FileDrop FileDrop `envconfig:"FILEDROP"`
	Ops      Ops

	// Tuning is embedded so its variables have no group prefix
	// (JIRABRIDGE_HEARTBEAT_INTERVAL).
	Tuning

	// set records, per variable, where its value came from (env, file);
	// absent means the default. Filled by Load, read by Effective.
	set map[string]string
}

// Jira is how the bridge reaches its local Jira.
type Jira struct {
	BaseURL string `split_words:"true" required:"true" desc:"base URL of the local Jira, e.g. https://jira.example.org"`
	// User is the sync user; its changes are never synced.
	User     string   `required:"true" desc:"the sync user the bridge acts as; its changes are never synced"`
	AuthMode AuthMode `split_words:"true" default:"basic" desc:"basic (user + password) or bearer (personal access token)"`
	Password Secret   `desc:"password of the sync user (auth mode basic)"`
	Token    Secret   `desc:"personal access token of the sync user (auth mode bearer)"`
	CAFile   string   `split_words:"true" desc:"PEM file of CA certificates to trust for Jira, in addition to the system's"`
	// DangerouslySkipTLSVerify turns off certificate checks. The name is
	// long on purpose.
	DangerouslySkipTLSVerify bool          `envconfig:"TLS_DANGEROUSLY_SKIP_VERIFY" desc:"true turns off Jira certificate verification (never in production)"`
	Timeout                  time.Duration `default:"30s" desc:"timeout of one Jira request"`
}

// SMTP is the outgoing mail path (to the peer and for alert mail).
type SMTP struct {
	Host    string  `desc:"SMTP server host name"`
	Port    int     `desc:"SMTP port; default 465 for tls, 587 for starttls, 25 for plain"`
	TLSMode TLSMode `split_words:"true" default:"starttls" desc:"tls (implicit), starttls (required) or plain (loopback host only)"`
	User    string  `desc:"SMTP user name; empty: no authentication"`
	// Password is the SMTP password.
	Password       Secret   `desc:"SMTP password"`
	CAFile         string   `split_words:"true" desc:"PEM file of CA certificates to trust for SMTP"`
	From           string   `desc:"address the bridge sends from (the peer's IMAP filter may match it)"`
	PeerAddress    string   `split_words:"true" desc:"address of the peer bridge's mailbox"`
	MaxMessageSize ByteSize `split_words:"true" default:"10MB" desc:"largest mail the servers accept (bytes, or with KB, MB, GB, KiB, MiB, GiB)"`
}

// IMAP is the incoming mail path.
type IMAP struct {
	Host             string     `desc:"IMAP server host name"`
	Port             int        `desc:"IMAP port; default 993 for tls, 143 for starttls and plain"`
	TLSMode          TLSMode    `split_words:"true" default:"tls" desc:"tls (implicit), starttls (required) or plain (loopback host only)"`
	User             string     `desc:"IMAP user name"`
	Password         Secret     `desc:"IMAP password"`
	CAFile           string     `split_words:"true" desc:"PEM file of CA certificates to trust for IMAP"`
	Mailbox          string     `default:"INBOX" desc:"folder the peer's mail arrives in"`
	ProcessedFolder  string     `split_words:"true" default:"jirabridge/processed" desc:"folder stored mail is moved to (after-store move)"`
	QuarantineFolder string     `split_words:"true" default:"jirabridge/quarantine" desc:"folder for mail that fails to verify or decode"`
	AfterStore       AfterStore `split_words:"true" default:"move" desc:"move or delete a mail once its envelope is stored"`
}

// FileDrop is the file transport: envelopes as files in two directories.
type FileDrop struct {
	OutgoingDir string `split_words:"true" desc:"directory this bridge writes envelopes to (transport file)"`
	IncomingDir string `split_words:"true" desc:"directory this bridge reads the peer's envelopes from (transport file)"`
}

// Ops is where alerts go.
type Ops struct {
	AlertTo []string `split_words:"true" desc:"comma-separated addresses that receive alert mail (sent through the SMTP settings)"`
	// WebhookURL is a Secret because chat webhook URLs carry their token.
	WebhookURL          Secret        `envconfig:"WEBHOOK_URL" desc:"URL that receives alerts as Alertmanager-style JSON"`
	AlertRepeatInterval time.Duration `split_words:"true" default:"4h" desc:"how often an alert is repeated while it lasts"`
	OutboxAgeThreshold  time.Duration `split_words:"true" default:"1h" desc:"alert when the oldest unacknowledged envelope is older than this"`
}

// Tuning holds the knobs of the engine and link; the defaults suit most
// sites.
type Tuning struct {
	Retention            time.Duration `default:"720h" desc:"how long processed payloads are kept before purging"`
	ReplayWorkers        int           `split_words:"true" default:"4" desc:"how many issues are applied in parallel"`
	HeartbeatInterval    time.Duration `split_words:"true" default:"5m" desc:"how often a heartbeat is sent when nothing else is"`
	PeerSilenceThreshold time.Duration `split_words:"true" default:"30m" desc:"alert when nothing was heard from the peer for this long"`
	GapResendTimeout     time.Duration `split_words:"true" default:"10m" desc:"how long a sequence gap may stay open before a resend is asked"`
	AckDelay             time.Duration `split_words:"true" default:"30s" desc:"how long an ack waits to ride along with other traffic"`
	BatchMaxChanges      int           `split_words:"true" default:"100" desc:"most changes in one envelope"`
	BatchMaxBytes        ByteSize      `split_words:"true" default:"5MB" desc:"largest envelope body before sealing"`
	BatchLinger          time.Duration `split_words:"true" default:"2s" desc:"how long the batcher waits for more changes"`
}

// SlogLevel returns the log level as a slog.Level (info when unknown;
// Validate reports unknown levels).
func (c *Config) SlogLevel() slog.Level {
	switch strings.ToLower(c.LogLevel) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// ByteSize is a size in bytes that reads "10MB", "512KiB" or "1048576".
type ByteSize int64

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"K", 1000}, {"M", 1000 * 1000}, {"G", 1000 * 1000 * 1000},
	{"B", 1},
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.ToUpper(strings.TrimSpace(string(text)))
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size (use bytes or a number with KB, MB, GB, KiB, MiB, GiB)", string(text))
	}
	if n > (1<<62)/mult {
		return fmt.Errorf("%q is too large", string(text))
	}
	*b = ByteSize(n * mult)
	return nil
}

// String prints the size in the largest unit that divides it exactly.
func (b ByteSize) String() string {
	n := int64(b)
	for _, u := range []struct {
		s string
		m int64
	}{{"GiB", 1 << 30}, {"GB", 1e9}, {"MiB", 1 << 20}, {"MB", 1e6}, {"KiB", 1 << 10}, {"KB", 1e3}} {
		if n != 0 && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}
