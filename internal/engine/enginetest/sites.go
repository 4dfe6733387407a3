// Package enginetest starts a realistic pair of Jira sites for the sync
// engine's tests: sitepair's two jirasims (the demo's and the bench's
// pair), with each site's parsed sync definition, mapping and sync user
// client ready for an engine node.
package enginetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/mapping"
	"github.com/jirabridge/jirabridge/internal/sitepair"
)

// Clock is a shared test clock. Every reading advances it by Tick, so Jira
// times on both sites are distinct and ordered like real time; Tick 0
// freezes it (for ties).
type Clock struct {
	mu   sync.Mutex
	t    time.Time
	tick time.Duration
}

// NewClock starts a clock at a fixed time that ticks by tick per reading.
func NewClock(tick time.Duration) *Clock {
	return &Clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), tick: tick}
}

// Now reads the clock and advances it by the tick.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(c.tick)
	return t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// SetTick changes how far each reading advances the clock.
func (c *Clock) SetTick(d time.Duration) {
	c.mu.Lock()
	c.tick = d
	c.mu.Unlock()
}

// Password is every seeded user's password.
const Password = sitepair.Password

// SyncUser is the sync user's name on both sites.
const SyncUser = sitepair.SyncUser

// Site is one Jira of the pair: Name, Project, Sim, URL and People come
// from sitepair.
type Site struct {
	*sitepair.Site
	// Field maps a custom field's display name to its id.
	Field   map[string]string
	Def     *config.SyncDef
	Mapping *mapping.Mapping
	// Sync is the sync user's client.
	Sync *jira.Client
}

// Client returns a Jira client acting as user (password Password; "admin"
// is jirasim's administrator).
func (s *Site) Client(t testing.TB, user string) *jira.Client {
	t.Helper()
	c, err := s.Site.Client(user)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// NewPair starts both sites on clk and closes them when the test ends.
// alpha uses Jira's default workflow (To Do, In Progress, Done); beta a
// longer one (Open, In Progress, In Review, Closed) so reaching "done"
// takes several transitions. The sync definitions have content sync off
// and park changes naming a person without a match; tests switch content
// on in code.
func NewPair(t testing.TB, clk *Clock) (alpha, beta *Site) {
	t.Helper()
	a, b, err := sitepair.Start(sitepair.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	t.Cleanup(b.Close)
	return newSite(t, a), newSite(t, b)
}

func newSite(t testing.TB, ps *sitepair.Site) *Site {
	t.Helper()
	s := &Site{Site: ps, Field: map[string]string{}}
	for _, f := range ps.Spec.Fields {
		id, ok := ps.Sim.FieldID(f.Name)
		if !ok {
			t.Fatalf("seed %s: field %q missing", ps.Name, f.Name)
		}
		s.Field[f.Name] = id
	}
	def, err := config.ParseSync([]byte(ps.Spec.SyncYAML(sitepair.SyncOptions{})))
	if err != nil {
		t.Fatalf("sync definition of %s: %v", ps.Name, err)
	}
	s.Def = def
	s.Sync = s.Client(t, SyncUser)
	fields, err := s.Sync.Fields(context.Background())
	if err != nil {
		t.Fatalf("fields of %s: %v", ps.Name, err)
	}
	if s.Mapping, err = mapping.New(def, fields, mapping.Options{Users: s.Sync}); err != nil {
		t.Fatalf("mapping of %s: %v", ps.Name, err)
	}
	return s
}
