package sitepair_test

import (
	"context"
	"testing"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/sitepair"
)

func TestSyncYAMLParses(t *testing.T) {
	t.Parallel()
	for _, sp := range sitepair.Specs() {
		for _, o := range []sitepair.SyncOptions{{}, {DropUnknownUsers: true, Comments: true}} {
			def, err := config.ParseSync([]byte(sp.SyncYAML(o)))
			if err != nil {
				t.Fatalf("%s %+v: %v", sp.Name, o, err)
			}
			if def.Project != sp.Project {
				t.Errorf("%s: project = %q, want %q", sp.Name, def.Project, sp.Project)
			}
			if got, want := def.Users.Fallback == config.UserDrop, o.DropUnknownUsers; got != want {
				t.Errorf("%s %+v: fallback drop = %v, want %v", sp.Name, o, got, want)
			}
			if got := def.Comments.Enabled; got != o.Comments {
				t.Errorf("%s %+v: comments enabled = %v, want %v", sp.Name, o, got, o.Comments)
			}
		}
	}
}

// TestStart: both sites serve their project, the sync user and the people
// log in, and the i-th person has the same e-mail on both sites.
func TestStart(t *testing.T) {
	t.Parallel()
	alpha, beta, err := sitepair.Start(sitepair.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer alpha.Close()
	defer beta.Close()
	ctx := context.Background()
	for i, p := range sitepair.People() {
		for _, s := range []*sitepair.Site{alpha, beta} {
			c, err := s.Client(s.People[i])
			if err != nil {
				t.Fatal(err)
			}
			u, err := c.Myself(ctx)
			if err != nil {
				t.Fatalf("%s as %s: %v", s, s.People[i], err)
			}
			if u.EmailAddress != p.Email {
				t.Errorf("%s: %s has e-mail %q, want %q", s, s.People[i], u.EmailAddress, p.Email)
			}
		}
	}
	for _, s := range []*sitepair.Site{alpha, beta} {
		c, err := s.Client(sitepair.SyncUser)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range s.Spec.Fields {
			if _, ok := s.Sim.FieldID(f.Name); !ok {
				t.Errorf("%s: field %q not seeded", s, f.Name)
			}
		}
		if _, err := c.Fields(ctx); err != nil {
			t.Errorf("%s: fields as the sync user: %v", s, err)
		}
	}
}
