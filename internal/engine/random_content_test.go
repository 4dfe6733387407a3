package engine_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/jirabridge/jirabridge/internal/store"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/jirabridge/jirabridge/internal/engine/enginetest"
	"github.com/jirabridge/jirabridge/internal/jira"
)

// Content operations of the randomized convergence test. To keep the
// expected end state well defined where Jira keeps no time to decide
// between concurrent changes (watchers and links have none), only the site
// an issue was created on toggles its watchers and outward links, and
// watcher toggles are for People[2], whom nothing else makes a watcher
// (comments, which make their author watch, are by People[0] and [1]).
// Comments and attachments are changed anywhere: the newer comment edit
// wins by Jira time, and deletes are idempotent.
func randomContent(t *testing.T, rng *rand.Rand, s *enginetest.Site, keys []string, made map[string]int) {
	t.Helper()
	ctx := context.Background()
	admin := s.Client(t, "admin")
	key := keys[rng.IntN(len(keys))]
	who := s.Client(t, s.People[rng.IntN(2)])
	switch rng.IntN(8) {
	case 0, 1:
		if _, err := who.AddComment(ctx, key, fmt.Sprintf("comment %d", rng.IntN(1000)), nil, nil); err != nil {
			t.Fatal(err)
		}
		made["comment add"]++
	case 2, 3:
		cms, err := s.Sync.Comments(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if len(cms) == 0 {
			return
		}
		c := cms[rng.IntN(len(cms))]
		if rng.IntN(3) == 0 {
			if err := admin.DeleteComment(ctx, key, c.ID); err != nil {
				t.Fatal(err)
			}
			made["comment delete"]++
			return
		}
		body := fmt.Sprintf("edited %d", rng.IntN(1000))
		if first, _, ok := strings.Cut(c.Body, "\n"); ok && c.Author.Name == enginetest.SyncUser {
			body = first + "\n" + body // a copy keeps its author line
		}
		if _, err := admin.EditComment(ctx, key, c.ID, body, nil); err != nil {
			t.Fatal(err)
		}
		made["comment edit"]++
	case 4:
		b := make([]byte, 1+rng.IntN(4000))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if _, err := who.AddAttachment(ctx, key, fmt.Sprintf("r%d.bin", rng.IntN(100000)), b); err != nil {
			t.Fatal(err)
		}
		made["attachment add"]++
	case 5:
		as, err := s.Sync.Attachments(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if len(as) == 0 {
			return
		}
		if err := admin.DeleteAttachment(ctx, as[rng.IntN(len(as))].ID); err != nil {
			t.Fatal(err)
		}
		made["attachment delete"]++
	case 6:
		own := ownKeys(t, s)
		if len(own) == 0 {
			return
		}
		k := own[rng.IntN(len(own))]
		name := s.People[2]
		ws, err := s.Sync.Watchers(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(ws, func(u jira.User) bool { return u.Name == name }) {
			err = admin.RemoveWatcher(ctx, k, name)
			made["watcher remove"]++
		} else {
			err = admin.AddWatcher(ctx, k, name)
			made["watcher add"]++
		}
		if err != nil {
			t.Fatal(err)
		}
	default:
		own := ownKeys(t, s)
		if len(own) == 0 {
			return
		}
		from, to := own[rng.IntN(len(own))], keys[rng.IntN(len(keys))]
		if from == to {
			return
		}
		typ := []string{"Blocks", "Relates"}[rng.IntN(2)]
		ls, err := s.Sync.IssueLinks(ctx, from)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range ls {
			if l.OutwardIssue != nil && l.OutwardIssue.Key == to && l.Type.Name == typ {
				if err := admin.DeleteLink(ctx, l.ID); err != nil {
					t.Fatal(err)
				}
				made["link remove"]++
				return
			}
		}
		if err := who.CreateLink(ctx, typ, from, to); err != nil {
			t.Fatal(err)
		}
		made["link add"]++
	}
}

// ownKeys are the issues people created on the site (not the bridge's copies).
func ownKeys(t *testing.T, s *enginetest.Site) []string {
	t.Helper()
	var keys []string
	err := s.Sync.SearchAll(context.Background(), "project = "+s.Project+" ORDER BY key ASC", []string{"creator"}, nil, func(is jira.Issue) error {
		var u jira.User
		if ok, _ := is.Field("creator", &u); ok && u.Name != enginetest.SyncUser {
			keys = append(keys, is.Key)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// diffContent compares the comments (text and author line), attachments
// (by checksum), watchers and outward links (as sets) of a pair.
func diffContent(t *testing.T, w *world, ak, bk string, toAlpha map[string]string) []string {
	t.Helper()
	var out []string
	cmp := func(what string, a, b []string) {
		if !slices.Equal(a, b) {
			out = append(out, fmt.Sprintf("%s/%s %s:\n  alpha %q\n  beta  %q", ak, bk, what, a, b))
		}
	}
	cmp("comments", commentSet(t, w.alpha, ak), commentSet(t, w.beta, bk))
	cmp("attachments", attachmentSet(t, w.alpha, ak), attachmentSet(t, w.beta, bk))
	cmp("watchers", watcherSet(t, w.alpha, ak), watcherSet(t, w.beta, bk))
	// JIRABRIDGE_DEBUG=1 explains a watcher difference: records and applied changes.
	if len(out) > 0 && os.Getenv("JIRABRIDGE_DEBUG") != "" {
		for _, x := range []struct {
			b   *bridge
			key string
		}{{w.a, ak}, {w.b, bk}} {
			is, _ := x.b.site.Sync.GetIssue(context.Background(), x.key, []string{"reporter", "creator"}, nil)
			_ = x.b.st.View(context.Background(), func(tx *store.Tx) error {
				items, _ := tx.SentList(syncID, is.ID)
				for _, it := range items {
					if it.ItemKind == "watchers" {
						t.Logf("%s %s record %q", x.b.site.Name, x.key, it.Version)
					}
				}
				rs, _ := tx.ReplayByState(syncID, store.ReplayApplied, 100000)
				for _, r := range rs {
					if strings.Contains(string(r.Change), "watcher") {
						t.Logf("%s applied %s: %s", x.b.site.Name, r.ChangeID, r.Change)
					}
				}
				return nil
			})
			t.Logf("%s %s fields %s %s", x.b.site.Name, x.key, is.Fields["reporter"], is.Fields["creator"])
		}
	}
	tr := func(k string) string {
		if a, ok := toAlpha[k]; ok {
			return a
		}
		return k
	}
	cmp("links", outwardLinks(t, w.alpha, ak, func(k string) string { return k }), outwardLinks(t, w.beta, bk, tr))
	return out
}

// commentSet is "author: text" per comment, the bridge's author line
// turned back into the author; sorted.
func commentSet(t *testing.T, s *enginetest.Site, key string) []string {
	t.Helper()
	cms, err := s.Sync.Comments(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cms {
		author, body := c.Author.DisplayName, c.Body
		if c.Author.Name == enginetest.SyncUser {
			author = "notice"
			if first, rest, ok := strings.Cut(body, "\n"); ok && strings.HasSuffix(first, " (Partner Jira):") {
				author, body = strings.TrimSuffix(first, " (Partner Jira):"), rest
			}
		}
		out = append(out, author+": "+body)
	}
	sort.Strings(out)
	return out
}

func attachmentSet(t *testing.T, s *enginetest.Site, key string) []string {
	t.Helper()
	as, err := s.Sync.Attachments(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range as {
		b, err := s.Sync.DownloadAttachment(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		out = append(out, a.Filename+"="+hex.EncodeToString(sum[:]))
	}
	sort.Strings(out)
	return out
}

// watcherSet is the watching people by e-mail (the same on both sites),
// without the sync user and the admin.
func watcherSet(t *testing.T, s *enginetest.Site, key string) []string {
	t.Helper()
	ws, err := s.Sync.Watchers(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, u := range ws {
		if strings.HasSuffix(u.EmailAddress, "@corp.example") {
			out = append(out, u.EmailAddress)
		}
	}
	sort.Strings(out)
	return out
}

func outwardLinks(t *testing.T, s *enginetest.Site, key string, tr func(string) string) []string {
	t.Helper()
	ls, err := s.Sync.IssueLinks(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		if l.OutwardIssue != nil {
			out = append(out, l.Type.Name+">"+tr(l.OutwardIssue.Key))
		}
	}
	sort.Strings(out)
	return out
}
