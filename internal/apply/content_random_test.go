package apply_test

import (
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/engine/enginetest"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/store"
)

// TestRandomizedContentConvergence makes random comment, attachment,
// watcher and link changes by people on both sides, interleaved with
// partial steps of the bridges so changes cross, settles after every batch,
// and compares every issue pair through the REST API: comments by text and
// author line, attachments by checksum, watchers and links as sets. The
// seed is printed; rerun with JIRABRIDGE_SEED=N. JIRABRIDGE_SOAK=1 makes
// many more changes.
func TestRandomizedContentConvergence(t *testing.T) {
	t.Parallel()
	seed, _ := strconv.ParseUint(os.Getenv("JIRABRIDGE_SEED"), 10, 64)
	if seed == 0 {
		seed = defaultSeed()
	}
	batches := 6
	if os.Getenv("JIRABRIDGE_SOAK") == "1" {
		batches = 40
	}
	t.Logf("seed %d (rerun: JIRABRIDGE_SEED=%d go test ./internal/apply -run TestRandomizedContentConvergence)", seed, seed)
	defer func() {
		if t.Failed() {
			t.Logf("FAILED with seed %d", seed)
		}
	}()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	// The bridges' clocks disagree by up to an hour either way: watcher
	// and link changes, which carry no Jira time, must converge anyway.
	w, _, clkB := clockWorld(t)
	clkB.Advance(time.Duration(rng.Int64N(int64(2*time.Hour))) - time.Hour)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		w.create(w.alpha, i, "alpha issue "+strconv.Itoa(i))
		w.create(w.beta, i, "beta issue "+strconv.Itoa(i))
	}
	w.settle()
	type pair struct{ a, b string }
	var pairs []pair
	_ = w.a.st.View(ctx, func(tx *store.Tx) error {
		ps, err := tx.PairList(syncID, "", 100)
		for _, p := range ps {
			pairs = append(pairs, pair{p.LocalKey, p.PeerKey})
		}
		return err
	})
	if len(pairs) != 6 {
		t.Fatalf("%d pairs, want 6", len(pairs))
	}
	keyOf := func(s *enginetest.Site, p pair) string {
		if s == w.alpha {
			return p.a
		}
		return p.b
	}
	admins := map[*enginetest.Site]*jira.Client{w.alpha: w.alpha.Client(t, "admin"), w.beta: w.beta.Client(t, "admin")}
	people := map[*enginetest.Site][]*jira.Client{}
	for _, s := range []*enginetest.Site{w.alpha, w.beta} {
		for i := range s.People {
			people[s] = append(people[s], w.person(s, i))
		}
	}
	words := []string{"alpha", "beta", "gamma", "delta", "ok", "fixed", "see log", "why?", "done"}
	text := func() string {
		n := 1 + rng.IntN(4)
		var b []string
		for i := 0; i < n; i++ {
			b = append(b, words[rng.IntN(len(words))])
		}
		return strings.Join(b, " ")
	}
	fileNo := 0
	ops := map[string]int{}
	for batch := 0; batch < batches; batch++ {
		for op := 0; op < 12; op++ {
			s := []*enginetest.Site{w.alpha, w.beta}[rng.IntN(2)]
			pi := rng.IntN(len(pairs))
			key := keyOf(s, pairs[pi])
			who := rng.IntN(len(s.People))
			switch k := rng.IntN(8); k {
			case 0, 1:
				if _, err := people[s][who].AddComment(ctx, key, text(), nil, nil); err != nil {
					t.Fatal(err)
				}
				ops["comment add"]++
			case 2, 3:
				cms, err := s.Sync.Comments(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				if len(cms) == 0 {
					continue
				}
				c := cms[rng.IntN(len(cms))]
				if rng.IntN(3) == 0 {
					if err := admins[s].DeleteComment(ctx, key, c.ID); err != nil {
						t.Fatal(err)
					}
					ops["comment delete"]++
					continue
				}
				body := text()
				if first, _, ok := strings.Cut(c.Body, "\n"); ok && c.Author.Name == enginetest.SyncUser {
					body = first + "\n" + body // keep the author line of a copy
				}
				if _, err := admins[s].EditComment(ctx, key, c.ID, body, nil); err != nil {
					t.Fatal(err)
				}
				ops["comment edit"]++
			case 4:
				fileNo++
				if _, err := people[s][who].AddAttachment(ctx, key, "f"+strconv.Itoa(fileNo)+".bin", randomBytes(int(rng.Uint32()), 1+rng.IntN(3000))); err != nil {
					t.Fatal(err)
				}
				ops["attachment add"]++
			case 5:
				as, err := s.Sync.Attachments(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				if len(as) == 0 {
					continue
				}
				if err := admins[s].DeleteAttachment(ctx, as[rng.IntN(len(as))].ID); err != nil {
					t.Fatal(err)
				}
				ops["attachment delete"]++
			case 6:
				name := s.People[who]
				ws, err := s.Sync.Watchers(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				if slices.ContainsFunc(ws, func(u jira.User) bool { return u.Name == name }) {
					err = admins[s].RemoveWatcher(ctx, key, name)
					ops["watcher remove"]++
				} else {
					err = admins[s].AddWatcher(ctx, key, name)
					ops["watcher add"]++
				}
				if err != nil {
					t.Fatal(err)
				}
			case 7:
				pj := rng.IntN(len(pairs))
				if pj == pi {
					continue
				}
				typ := []string{"Blocks", "Relates"}[rng.IntN(2)]
				other := keyOf(s, pairs[pj])
				ls, err := s.Sync.IssueLinks(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				var have string
				for _, l := range ls {
					if l.OutwardIssue != nil && l.OutwardIssue.Key == other && l.Type.Name == typ {
						have = l.ID
					}
				}
				if have != "" {
					err = admins[s].DeleteLink(ctx, have)
					ops["link remove"]++
				} else {
					err = people[s][who].CreateLink(ctx, typ, key, other)
					ops["link add"]++
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			// Now and then a partial step, so changes cross in flight.
			if rng.IntN(3) == 0 {
				sd := []*side{w.a, w.b}[rng.IntN(2)]
				switch rng.IntN(3) {
				case 0:
					if _, err := sd.det.Poll(ctx); err != nil {
						t.Fatal(err)
					}
				case 1:
					if _, err := sd.rep.Round(ctx); err != nil {
						t.Fatal(err)
					}
				case 2:
					if sd == w.a {
						_, _ = move(ctx, w.a, w.b, w.sentAB)
					} else {
						_, _ = move(ctx, w.b, w.a, w.sentBA)
					}
				}
			}
		}
		w.settle()
	}
	t.Logf("operations: %v", ops)
	toAlpha := map[string]string{}
	for _, p := range pairs {
		toAlpha[p.b] = p.a
	}
	tr := func(k string) string {
		if a, ok := toAlpha[k]; ok {
			return a
		}
		return k
	}
	id := func(k string) string { return k }
	noAdmin := func(s []string) []string {
		return slices.DeleteFunc(s, func(e string) bool { return !strings.HasSuffix(e, "@corp.example") })
	}
	for _, p := range pairs {
		same(t, p.a+"/"+p.b+" comments", commentLines(t, w.alpha, p.a), commentLines(t, w.beta, p.b))
		same(t, p.a+"/"+p.b+" attachments", attachmentSums(t, w.alpha, p.a), attachmentSums(t, w.beta, p.b))
		same(t, p.a+"/"+p.b+" watchers", noAdmin(watcherEmails(t, w.alpha, p.a)), noAdmin(watcherEmails(t, w.beta, p.b)))
		same(t, p.a+"/"+p.b+" links", linkSet(t, w.alpha, p.a, id), linkSet(t, w.beta, p.b, tr))
	}
}

// defaultSeed is the seed of a run that names none: a fixed one, so that
// make test is reproducible and a failure in CI is a change in the code,
// not a draw. JIRABRIDGE_SEED=N replays a seed; JIRABRIDGE_SEED=random
// draws a new one each run (make soak does), to explore.
func defaultSeed() uint64 {
	if os.Getenv("JIRABRIDGE_SEED") == "random" {
		return uint64(time.Now().UnixNano())
	}
	return 1
}
