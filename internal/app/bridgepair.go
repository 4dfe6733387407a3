package app

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"
)

// pairSetup says how startBridgePair prepares the demo's and the bench's
// two bridges.
type pairSetup struct {
	Poll    time.Duration
	MailEnv func(bridge string) map[string]string
	Wait    time.Duration // for each set-up step to show in status
	Note    string        // the publish note
	Check   bool          // run `jirabridge check` on both first
	// Out receives the commands' output; Narrate also prints each command
	// as a person would type it (the demo).
	Out     io.Writer
	Narrate bool
}

// bridgePair is two running bridges, master first.
type bridgePair struct {
	bridges       []*demoBridge
	master, slave *demoBridge
	stopAll       context.CancelFunc
	stopped       bool
}

// startBridgePair sets up two bridges as docs/setup.md describes (check,
// init, join, run, publish, start; a is the master) and leaves their
// daemons running. close stops them and closes their logs.
func startBridgePair(ctx context.Context, dir string, a, b *demoSite, o pairSetup) (p *bridgePair, err error) {
	p = &bridgePair{}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	for _, s := range []*demoSite{a, b} {
		br, err := newDemoBridge(dir, s, o.Poll, o.MailEnv)
		if err != nil {
			return nil, err
		}
		p.bridges = append(p.bridges, br)
	}
	p.master, p.slave = p.bridges[0], p.bridges[1]
	say := func(format string, args ...any) {
		if o.Narrate {
			fmt.Fprintf(o.Out, format, args...)
		}
	}
	hs := filepath.Join(dir, "handshake.json")
	type step struct {
		b    *demoBridge
		args []string
	}
	var steps []step
	if o.Check {
		steps = append(steps, step{p.master, []string{"check"}}, step{p.slave, []string{"check"}})
	}
	steps = append(steps, step{p.master, []string{"init", "--out", hs}}, step{p.slave, []string{"join", hs}})
	for _, s := range steps {
		say("$ jirabridge %s   (%s)\n", strings.Join(s.args, " "), s.b.name)
		if err := s.b.must(ctx, o.Out, s.args...); err != nil {
			return nil, err
		}
	}
	runCtx, stopAll := context.WithCancel(context.WithoutCancel(ctx))
	p.stopAll = stopAll
	for _, br := range p.bridges {
		bctx, cancel := context.WithCancel(runCtx)
		br.cancel, br.done = cancel, make(chan int, 1)
		go func(br *demoBridge) {
			code, _ := br.main(bctx, io.Discard, "run")
			br.done <- code
		}(br)
	}
	say("$ jirabridge run   (both; daemons in the background)\n")
	for _, br := range p.bridges {
		if err := br.waitFor(ctx, "the handshake", o.Wait, func(r statusReport) bool { return r.State == "STOPPED" }); err != nil {
			return nil, err
		}
	}
	say("  handshake done: both STOPPED\n$ jirabridge publish   (%s)\n", p.master.name)
	if err := p.master.must(ctx, o.Out, "publish", "--note", o.Note); err != nil {
		return nil, err
	}
	if err := p.slave.waitFor(ctx, "adopting the configuration", o.Wait, func(r statusReport) bool { return r.AdoptedVersion == 1 }); err != nil {
		return nil, err
	}
	if err := p.master.waitFor(ctx, "the slave's ack", o.Wait, func(r statusReport) bool { return r.State == "STOPPED" }); err != nil {
		return nil, err
	}
	for _, br := range p.bridges {
		say("$ jirabridge start   (%s)\n", br.name)
		if err := br.must(ctx, o.Out, "start"); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// stop stops both daemons and waits for them; calling it again does
// nothing.
func (p *bridgePair) stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	for _, br := range p.bridges {
		if br.cancel != nil {
			br.cancel()
			<-br.done
		}
	}
	if p.stopAll != nil {
		p.stopAll()
	}
}

// close stops the daemons and closes their logs.
func (p *bridgePair) close() {
	p.stop()
	for _, br := range p.bridges {
		br.logf.Close()
	}
}
