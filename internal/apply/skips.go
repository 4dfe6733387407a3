package apply

import (
	"fmt"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// This file names what the applier leaves out on purpose in the store's
// list of skipped items (direction incoming), for `jirabridge status`: a
// watcher nobody here matches, a link whose other end has not arrived or
// whose type has no local name. Each entry is written in the transaction
// that records the change, and cleared in the one that ends the skip.

// watcherSkip keys an incoming watcher by the peer's person: the same
// person's add and removal meet on it.
func (a *Applier) watcherSkip(c wire.Change, p store.IssuePair) store.SkipKey {
	item := ""
	if c.Watcher != nil {
		item = userLabel(*c.Watcher)
	}
	return store.SkipKey{SyncID: a.o.SyncID, Direction: store.SkipIncoming, IssueID: p.LocalID, Kind: store.SkipWatcher, Item: item}
}

// linkSkip keys an incoming link by the peer's link id on the local issue
// it starts from.
func (a *Applier) linkSkip(c wire.Change, localIssue string) store.SkipKey {
	return store.SkipKey{SyncID: a.o.SyncID, Direction: store.SkipIncoming, IssueID: localIssue, Kind: store.SkipLink, Item: c.Link.ID}
}

func userLabel(u wire.User) string {
	switch {
	case u.Name != "":
		return u.Name
	case u.Email != "":
		return u.Email
	case u.Display != "":
		return u.Display
	}
	return "(unnamed)"
}

func unmappedWatcherReason(u wire.User, def *config.SyncDef) string {
	who := userLabel(u)
	if u.Display != "" && u.Display != who {
		who += " (" + u.Display + ")"
	}
	if def == nil {
		return fmt.Sprintf("peer user %s has no match here under the user policy: create a matching user here", who)
	}
	p := def.Users
	mode := p.Mode
	if mode == "" {
		mode = config.UserByUsername
	}
	switch mode {
	case config.UserByUsername, config.UserByEmail:
		by := "username"
		if mode == config.UserByEmail {
			by = "e-mail address"
		}
		return fmt.Sprintf("peer user %s has no match here under the user policy (users.mode %s): create a user with the same %s here, or set users.fallback fixed; the watcher is added when the peer next adds them",
			who, mode, by)
	}
	return fmt.Sprintf("peer user %s is not a user here under the user policy (users.mode %s): watchers need users.mode by_username, by_email or fixed", who, mode)
}

func waitingLinkReason(c wire.Change) string {
	return fmt.Sprintf("waits for its other end, peer issue %s, to be created here: the link is made when it is; if it does not come, look for its parked create (jirabridge messages list) on either side",
		c.Link.OtherIssueID)
}

func linkTypeReason(c wire.Change) string {
	return fmt.Sprintf("link type alias %q is not in links.types of the sync definition here: map it there; the link is made once mapped, when the bridge next creates an issue",
		c.Link.Type)
}
