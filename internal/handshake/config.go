package handshake

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// Config is what the master publishes: the aliases both sides share on the
// wire and which features and directions are on. Only the master defines
// aliases; the slave maps each to a local name and may leave features off
// or narrow a field's direction, never add.
type Config struct {
	// Version numbers the master's publications, from 1.
	Version     int           `json:"version"`
	Note        string        `json:"note,omitempty"`
	PublishedAt time.Time     `json:"published_at"`
	IssueTypes  []string      `json:"issue_types"`
	Statuses    []string      `json:"statuses"`
	Fields      []FieldConfig `json:"fields"`
	LinkTypes   []string      `json:"link_types,omitempty"`
	Features    Features      `json:"features"`
}

// FieldConfig is one field alias. Direction is seen from the side that
// wrote the Config; Values lists the value aliases of a field whose values
// are translated (empty: values pass through).
type FieldConfig struct {
	Alias     string   `json:"alias"`
	Direction string   `json:"direction"`
	Values    []string `json:"values,omitempty"`
}

// Features says which content beyond fields and status is synced.
type Features struct {
	Comments    bool `json:"comments"`
	Attachments bool `json:"attachments"`
	Watchers    bool `json:"watchers"`
	Links       bool `json:"links"`
	Subtasks    bool `json:"subtasks"`
}

// AliasesOf returns the aliases and features of a sync definition, sorted,
// as this side would publish them (Version, Note and PublishedAt empty).
func AliasesOf(def *config.SyncDef) *Config {
	c := &Config{
		IssueTypes: aliases(def.IssueTypes),
		Statuses:   aliases(def.Statuses),
		LinkTypes:  aliases(def.Links.Types),
		Features: Features{
			Comments: def.Comments.Enabled, Attachments: def.Attachments.Enabled,
			Watchers: def.Watchers.Enabled, Links: def.Links.Enabled, Subtasks: def.Subtasks.Enabled,
		},
	}
	for _, f := range def.Fields {
		d := string(f.Direction)
		if d == "" {
			d = string(config.DirBoth)
		}
		c.Fields = append(c.Fields, FieldConfig{Alias: f.Alias, Direction: d, Values: aliases(f.Values)})
	}
	sort.Slice(c.Fields, func(i, j int) bool { return c.Fields[i].Alias < c.Fields[j].Alias })
	return c
}

func aliases(m config.AliasMap) []string {
	var out []string
	for _, p := range m {
		out = append(out, p.Alias)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// sameAliases reports whether two configurations define the same aliases
// and features (versions and notes aside).
func sameAliases(a, b *Config) bool {
	x, y := *a, *b
	x.Version, x.Note, x.PublishedAt = 0, "", time.Time{}
	y.Version, y.Note, y.PublishedAt = 0, "", time.Time{}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}

// Compare checks the slave's own aliases (local) against the master's
// published configuration. Missing lists every master alias the slave has
// not mapped, one line each ("issue type bug", "field severity value
// sev1"); Widening lists what the slave has that the master does not
// allow (an alias the master does not define, a feature the master has
// off, a direction the master's does not permit). The slave adopts the
// configuration when both are empty.
func Compare(master, local *Config) (missing, widening []string) {
	set := func(in []string) map[string]bool {
		m := make(map[string]bool, len(in))
		for _, s := range in {
			m[s] = true
		}
		return m
	}
	diff := func(what string, want, have []string) {
		hs, ws := set(have), set(want)
		for _, a := range want {
			if !hs[a] {
				missing = append(missing, what+" "+a)
			}
		}
		for _, a := range have {
			if !ws[a] {
				widening = append(widening, what+" "+a+" (the master does not define it)")
			}
		}
	}
	diff("issue type", master.IssueTypes, local.IssueTypes)
	diff("status", master.Statuses, local.Statuses)
	if len(master.LinkTypes) > 0 || len(local.LinkTypes) > 0 {
		diff("link type", master.LinkTypes, local.LinkTypes)
	}
	lf := map[string]FieldConfig{}
	for _, f := range local.Fields {
		lf[f.Alias] = f
	}
	mf := map[string]FieldConfig{}
	for _, f := range master.Fields {
		mf[f.Alias] = f
		l, ok := lf[f.Alias]
		if !ok {
			missing = append(missing, "field "+f.Alias)
			continue
		}
		if !directionAllowed(f.Direction, l.Direction) {
			widening = append(widening, fmt.Sprintf("field %s direction %s (the master's is %s; allowed here: %s)",
				f.Alias, l.Direction, f.Direction, strings.Join(allowedDirections(f.Direction), " or ")))
		}
		if len(l.Values) > 0 {
			diff("field "+f.Alias+" value", f.Values, l.Values)
		}
	}
	for _, f := range local.Fields {
		if _, ok := mf[f.Alias]; !ok {
			widening = append(widening, "field "+f.Alias+" (the master does not define it)")
		}
	}
	feat := func(name string, m, l bool) {
		if l && !m {
			widening = append(widening, "feature "+name+" (the master has it off)")
		}
	}
	feat("comments", master.Features.Comments, local.Features.Comments)
	feat("attachments", master.Features.Attachments, local.Features.Attachments)
	feat("watchers", master.Features.Watchers, local.Features.Watchers)
	feat("links", master.Features.Links, local.Features.Links)
	feat("subtasks", master.Features.Subtasks, local.Features.Subtasks)
	return missing, widening
}

// allowedDirections returns the slave directions a master direction
// permits: the master sending only means the slave may only receive, and
// the other way round.
func allowedDirections(master string) []string {
	switch master {
	case string(config.DirOutgoing):
		return []string{string(config.DirIncoming)}
	case string(config.DirIncoming):
		return []string{string(config.DirOutgoing)}
	default:
		return []string{string(config.DirBoth), string(config.DirOutgoing), string(config.DirIncoming)}
	}
}

func directionAllowed(master, slave string) bool {
	return slices.Contains(allowedDirections(master), slave)
}

// configBody is the body of a KindConfig envelope: the master's
// configuration, or the slave's ack of one.
type configBody struct {
	Type       string  `json:"type"` // "config" or "config_ack"
	Version    int     `json:"version"`
	Config     *Config `json:"config,omitempty"`
	AckVersion int     `json:"ack_version,omitempty"`
}

// StoredConfig returns the configuration a sync last published (master)
// or received (slave), and nil when there is none.
func StoredConfig(tx *store.Tx, syncID string) (*Config, error) {
	v, err := getCursor(tx, syncID, "config")
	if err != nil || v == "" {
		return nil, err
	}
	var c Config
	if err := json.Unmarshal([]byte(v), &c); err != nil {
		return nil, fmt.Errorf("stored configuration of sync %s does not decode: %w", syncID, err)
	}
	return &c, nil
}

// AdoptedVersion returns the configuration version the slave adopted (the
// master: the version the slave acked); 0 when none.
func AdoptedVersion(tx *store.Tx, syncID string) (int, error) {
	v, err := getCursor(tx, syncID, "adopted")
	if err != nil || v == "" {
		return 0, err
	}
	return strconv.Atoi(v)
}

func resumeState(tx *store.Tx, syncID string) (store.SyncState, error) {
	v, err := getCursor(tx, syncID, "resume")
	if err != nil {
		return "", err
	}
	if v == string(store.StateRunning) {
		return store.StateRunning, nil
	}
	return store.StateStopped, nil
}

// Publish sends the master's configuration (the aliases of its sync
// definition) to the slave as a KindConfig envelope and puts the master in
// WAITING FOR SLAVE until the slave acks it; then the master returns to
// STOPPED, or RUNNING if it was running. It returns the published version.
func Publish(tx *store.Tx, syncID string, c *Config, note string) (int, error) {
	s, err := tx.SyncGet(syncID)
	if err != nil {
		return 0, fmt.Errorf("publish: read sync: %w", err)
	}
	if s.Role != store.RoleMaster {
		return 0, fmt.Errorf("publish: %w: only the master publishes (sync %q is the slave here; its aliases come from the master)", ErrState, s.Name)
	}
	switch s.State {
	case store.StateCreated, store.StateHandshake:
		return 0, fmt.Errorf("publish: %w: sync %q is %s; the handshake with the slave must finish first (run the bridge on both sides until status shows STOPPED)", ErrState, s.Name, s.State)
	case store.StateWaitingForSlave:
		// A new publication replaces the one the slave has not adopted;
		// the state to return to stays.
	default:
		resume := store.StateStopped
		if s.State == store.StateRunning {
			resume = store.StateRunning
		}
		if err := setCursor(tx, syncID, "resume", string(resume)); err != nil {
			return 0, err
		}
	}
	prev, err := StoredConfig(tx, syncID)
	if err != nil {
		return 0, err
	}
	pub := *c
	pub.Version = 1
	if prev != nil {
		pub.Version = prev.Version + 1
	}
	pub.Note = note
	pub.PublishedAt = tx.Now().UTC().Truncate(time.Millisecond)
	b, err := json.Marshal(pub)
	if err != nil {
		return 0, fmt.Errorf("publish: encode configuration: %w", err)
	}
	if err := setCursor(tx, syncID, "config", string(b)); err != nil {
		return 0, err
	}
	if err := tx.SyncSetState(syncID, store.StateWaitingForSlave, fmt.Sprintf("configuration %d sent; waiting for the slave to adopt it", pub.Version)); err != nil {
		return 0, fmt.Errorf("publish: set state: %w", err)
	}
	if err := queue(tx, syncID, wire.KindConfig, configBody{Type: "config", Version: ProtocolVersion, Config: &pub}); err != nil {
		return 0, err
	}
	return pub.Version, nil
}

// config handles a configuration arriving at the slave.
func (r *recv) config(env wire.Envelope) (Result, error) {
	var b configBody
	if err := json.Unmarshal(env.Body, &b); err != nil || b.Type != "config" || b.Config == nil {
		return r.refuse(ReasonBadBody, "the config body is not a configuration")
	}
	prev, err := StoredConfig(r.tx, r.s.ID)
	if err != nil {
		return Result{}, err
	}
	if prev != nil && prev.Version >= b.Config.Version {
		return Result{Sync: r.s.ID, Event: EventDuplicate, State: r.s.State}, nil
	}
	cb, err := json.Marshal(b.Config)
	if err != nil {
		return Result{}, fmt.Errorf("encode configuration: %w", err)
	}
	if err := setCursor(r.tx, r.s.ID, "config", string(cb)); err != nil {
		return Result{}, err
	}
	if r.s.State != store.StateUpdateRequired {
		resume := store.StateStopped
		if r.s.State == store.StateRunning {
			resume = store.StateRunning
		}
		if err := setCursor(r.tx, r.s.ID, "resume", string(resume)); err != nil {
			return Result{}, err
		}
	}
	if err := r.tx.SyncSetState(r.s.ID, store.StateUpdateRequired, fmt.Sprintf("configuration %d from the master is not adopted yet", b.Config.Version)); err != nil {
		return Result{}, fmt.Errorf("set state: %w", err)
	}
	res := Result{Sync: r.s.ID, Event: EventConfig, State: store.StateUpdateRequired}
	if r.o.Local != nil {
		rec, err := Reconcile(r.tx, r.s.ID, r.o.Local)
		if err != nil {
			return Result{}, err
		}
		res.State, res.Missing = rec.State, rec.Missing
	}
	return res, nil
}

// configAck handles the slave's ack of a configuration at the master.
func (r *recv) configAck(env wire.Envelope) (Result, error) {
	var b configBody
	if err := json.Unmarshal(env.Body, &b); err != nil || b.Type != "config_ack" {
		return r.refuse(ReasonBadBody, "the config body is not an ack")
	}
	cur, err := StoredConfig(r.tx, r.s.ID)
	if err != nil {
		return Result{}, err
	}
	res := Result{Sync: r.s.ID, Event: EventConfigAck, State: r.s.State}
	if cur == nil || b.AckVersion != cur.Version {
		// An ack of an older publication: the newer one is still open.
		return res, nil
	}
	if err := setCursor(r.tx, r.s.ID, "adopted", strconv.Itoa(b.AckVersion)); err != nil {
		return Result{}, err
	}
	if r.s.State == store.StateWaitingForSlave {
		st, err := resumeState(r.tx, r.s.ID)
		if err != nil {
			return Result{}, err
		}
		if err := r.tx.SyncSetState(r.s.ID, st, ""); err != nil {
			return Result{}, fmt.Errorf("set state: %w", err)
		}
		res.State = st
	}
	return res, nil
}

// Reconciled is what Reconcile found.
type Reconciled struct {
	Version  int      // the master's configuration version (0: none received)
	Adopted  bool     // adopted now or before
	Missing  []string // master aliases the slave does not map
	Widening []string // what the slave has beyond the master's configuration
	State    store.SyncState
}

// Reconcile checks the slave's own aliases (AliasesOf its sync definition)
// against the master's configuration. When everything is mapped and nothing
// widened it adopts the configuration: the ack goes into the outbox and the
// sync returns to STOPPED (or RUNNING if it was running). Otherwise the sync
// stays in UPDATE REQUIRED with the reason. The daemon calls it at start and
// whenever the sync definition changes; `status` and `start` call it too.
func Reconcile(tx *store.Tx, syncID string, local *Config) (Reconciled, error) {
	s, err := tx.SyncGet(syncID)
	if err != nil {
		return Reconciled{}, fmt.Errorf("reconcile: read sync: %w", err)
	}
	if s.Role != store.RoleSlave {
		return Reconciled{State: s.State}, nil
	}
	master, err := StoredConfig(tx, syncID)
	if err != nil || master == nil {
		return Reconciled{State: s.State}, err
	}
	adopted, err := AdoptedVersion(tx, syncID)
	if err != nil {
		return Reconciled{}, err
	}
	rec := Reconciled{Version: master.Version, State: s.State}
	rec.Missing, rec.Widening = Compare(master, local)
	if adopted == master.Version {
		if len(rec.Missing) == 0 && len(rec.Widening) == 0 {
			rec.Adopted = true
			return rec, nil
		}
		// The local definition was edited and no longer fits the adopted
		// configuration: stop syncing until it does again (then the
		// configuration is adopted and acked once more).
		if err := setCursor(tx, syncID, "adopted", "0"); err != nil {
			return Reconciled{}, err
		}
	}
	if len(rec.Missing) > 0 || len(rec.Widening) > 0 {
		reason := fmt.Sprintf("configuration %d from the master: %d alias(es) not mapped, %d beyond what the master allows; see jirabridge status",
			master.Version, len(rec.Missing), len(rec.Widening))
		if s.State != store.StateUpdateRequired || s.StateReason != reason {
			if s.State != store.StateUpdateRequired {
				resume := store.StateStopped
				if s.State == store.StateRunning {
					resume = store.StateRunning
				}
				if err := setCursor(tx, syncID, "resume", string(resume)); err != nil {
					return Reconciled{}, err
				}
			}
			if err := tx.SyncSetState(syncID, store.StateUpdateRequired, reason); err != nil {
				return Reconciled{}, fmt.Errorf("reconcile: set state: %w", err)
			}
		}
		rec.State = store.StateUpdateRequired
		return rec, nil
	}
	st := s.State
	if st == store.StateUpdateRequired {
		if st, err = resumeState(tx, syncID); err != nil {
			return Reconciled{}, err
		}
		if err := tx.SyncSetState(syncID, st, ""); err != nil {
			return Reconciled{}, fmt.Errorf("reconcile: set state: %w", err)
		}
	}
	if err := setCursor(tx, syncID, "adopted", strconv.Itoa(master.Version)); err != nil {
		return Reconciled{}, err
	}
	if err := queue(tx, syncID, wire.KindConfig, configBody{Type: "config_ack", Version: ProtocolVersion, AckVersion: master.Version}); err != nil {
		return Reconciled{}, err
	}
	rec.Adopted, rec.State = true, st
	return rec, nil
}

// Fixed is what a sync was created with and may never change.
type Fixed struct {
	ProjectKey string
	SyncUser   string
}

// CheckFixed refuses a project key or sync user that differs from the
// sync's, saying why and what to do instead.
func CheckFixed(s store.Sync, f Fixed) error {
	var probs []string
	if f.ProjectKey != "" && f.ProjectKey != s.ProjectKey {
		probs = append(probs, fmt.Sprintf("the sync definition names project %q, but sync %q was created for project %q. "+
			"The project is fixed when the sync is created: the issue pairs, cursors and history of the sync all refer to issues of %s. "+
			"Set project: %s in the sync definition again, or, to sync another project, create a new sync (jirabridge init in a new data directory)",
			f.ProjectKey, s.Name, s.ProjectKey, s.ProjectKey, s.ProjectKey))
	}
	if f.SyncUser != "" && f.SyncUser != s.SyncUser {
		probs = append(probs, fmt.Sprintf("JIRABRIDGE_JIRA_USER is %q, but sync %q was created with sync user %q. "+
			"The sync user is fixed when the sync is created: it is how the bridge tells its own writes apart from people's changes, "+
			"and with another user it would send its own writes back as new changes. "+
			"Set JIRABRIDGE_JIRA_USER=%s again (to change only its password or token, see \"Changing the password\" in docs/setup.md), "+
			"or create a new sync for another user",
			f.SyncUser, s.Name, s.SyncUser, s.SyncUser))
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: %s", ErrFixed, strings.Join(probs, "; "))
	}
	return nil
}

// Start moves a set-up sync to RUNNING (from STOPPED, or PAUSED once the
// cause is fixed). The master must have published and the slave adopted a
// configuration; the project key and sync user must be the ones the sync
// was created with; the master's sync definition must not have changed
// since its last publication. A master WAITING FOR SLAVE stays there with
// a nil error and runs as soon as the slave acks.
func Start(tx *store.Tx, syncID string, fixed Fixed, local *Config) (store.SyncState, error) {
	s, err := tx.SyncGet(syncID)
	if err != nil {
		return "", fmt.Errorf("start: read sync: %w", err)
	}
	if err := CheckFixed(s, fixed); err != nil {
		return s.State, err
	}
	switch s.State {
	case store.StateCreated:
		return s.State, fmt.Errorf("start: %w: sync %q is CREATED: no slave has joined yet; hand the handshake file to the partner, who runs jirabridge join", ErrState, s.Name)
	case store.StateHandshake:
		return s.State, fmt.Errorf("start: %w: sync %q is in HANDSHAKE: the two bridges have not finished greeting each other; keep both running (jirabridge run) until status shows STOPPED", ErrState, s.Name)
	case store.StateRunning:
		return s.State, nil
	}
	if s.Role == store.RoleMaster {
		pub, err := StoredConfig(tx, syncID)
		if err != nil {
			return "", err
		}
		if pub == nil {
			return s.State, fmt.Errorf("start: %w: the configuration was never published; run jirabridge publish", ErrState)
		}
		if local != nil && !sameAliases(pub, local) {
			return s.State, fmt.Errorf("start: %w: the sync definition changed since configuration %d was published; run jirabridge publish so the slave sees the change", ErrState, pub.Version)
		}
		if s.State == store.StateWaitingForSlave {
			// Not an error: the start is remembered and happens when the
			// slave acks (an error would roll the transaction back).
			return s.State, setCursor(tx, syncID, "resume", string(store.StateRunning))
		}
	} else {
		if local != nil {
			rec, err := Reconcile(tx, syncID, local)
			if err != nil {
				return "", err
			}
			if rec.Version == 0 {
				return s.State, fmt.Errorf("start: %w: no configuration from the master yet; the master runs jirabridge publish", ErrState)
			}
			if !rec.Adopted {
				return rec.State, fmt.Errorf("start: %w: UPDATE REQUIRED: map these aliases of the master in the sync definition: %s%s", ErrState,
					strings.Join(rec.Missing, ", "), widenNote(rec.Widening))
			}
			s.State = rec.State
			if s.State == store.StateRunning {
				return s.State, nil
			}
		} else if v, err := AdoptedVersion(tx, syncID); err != nil || v == 0 {
			if err != nil {
				return "", err
			}
			return s.State, fmt.Errorf("start: %w: no configuration from the master adopted yet", ErrState)
		}
	}
	if err := tx.SyncSetState(syncID, store.StateRunning, ""); err != nil {
		return "", fmt.Errorf("start: %w", err)
	}
	return store.StateRunning, nil
}

func widenNote(w []string) string {
	if len(w) == 0 {
		return ""
	}
	return "; and remove what the master does not allow: " + strings.Join(w, ", ")
}

// Stop moves a sync to STOPPED: detection and replay stop, the link keeps
// carrying lifecycle messages, acks and heartbeats. In WAITING FOR SLAVE or
// UPDATE REQUIRED the sync stays there and returns to STOPPED afterwards.
func Stop(tx *store.Tx, syncID string) (store.SyncState, error) {
	s, err := tx.SyncGet(syncID)
	if err != nil {
		return "", fmt.Errorf("stop: read sync: %w", err)
	}
	switch s.State {
	case store.StateCreated, store.StateHandshake:
		return s.State, fmt.Errorf("stop: %w: sync %q is %s; it is not running", ErrState, s.Name, s.State)
	case store.StateWaitingForSlave, store.StateUpdateRequired:
		return s.State, setCursor(tx, syncID, "resume", string(store.StateStopped))
	case store.StateStopped:
		return s.State, nil
	}
	if err := tx.SyncSetState(syncID, store.StateStopped, ""); err != nil {
		return "", fmt.Errorf("stop: %w", err)
	}
	return store.StateStopped, nil
}
