package diagnostics

import (
	"context"
	"fmt"

	"github.com/homerouter/homerouter/state"
)

// node is a check of the tree. Its children run only while it passes:
// pinging the gateway says nothing new when there is no carrier, so
// they report "dependency X failed" instead, and the first failure in
// the tree is the cause rather than one of its consequences.
type node struct {
	name string
	// failAfter is how many failures in a row turn a passing check
	// failed. 1 for what the router knows for sure (a carrier, a lease);
	// more for probes across the network, where one lost packet is no
	// news and must not flap the router's health.
	failAfter int
	// probe marks a check that asks the network (a ping, a DNS query):
	// it runs on the evaluator's fresh rounds, and otherwise repeats
	// its last verdict, so that a change of a link or a lease shows in
	// the tree at once without waiting for the network.
	probe bool
	// target is what a probe asks (a gateway's address, the DNS
	// servers): when it changes, the probe runs again at once rather
	// than repeat a verdict about another target.
	target   string
	test     func(ctx context.Context) result
	children []node
}

// result is one run of a check: err nil when it passed, with what it saw
// (summary) and what a person should know even so (notice).
type result struct {
	summary, notice string
	err             error
}

func pass(format string, args ...any) result { return result{summary: fmt.Sprintf(format, args...)} }

func fail(format string, args ...any) result { return result{err: fmt.Errorf(format, args...)} }

// evaluator runs the tree and remembers, per check, what hysteresis
// needs. Its zero value is ready to use; it is not safe for concurrent
// use.
type evaluator struct {
	memory map[string]*memory // by path: "link/uplink0/dhcp4/gateway"
}

// memory is a check's recent past.
type memory struct {
	ok    bool   // what was reported last time
	fails int    // failures in a row
	last  result // the last pass, reported while a failure is tolerated
	// shown is what was reported last time, without children, and
	// target what it was about: what a probe repeats between fresh
	// rounds.
	shown  state.HealthCheck
	target string
}

// run runs nodes and their children, in order, and returns the tree as
// /health.json shows it. fresh runs the probes too; otherwise a probe
// that has run since its dependency last failed repeats its verdict.
func (e *evaluator) run(ctx context.Context, nodes []node, fresh bool) []state.HealthCheck {
	if e.memory == nil {
		e.memory = map[string]*memory{}
	}
	ran := map[string]bool{}
	out := make([]state.HealthCheck, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, e.eval(ctx, n, "", "", fresh, ran))
	}
	// A check that did not run (its dependency failed, or it is gone,
	// as the IPv6 gateway is with the route) starts over next time: it
	// has to pass once before a failure is tolerated again.
	for path := range e.memory {
		if !ran[path] {
			delete(e.memory, path)
		}
	}
	return out
}

// eval runs n, whose parent is at path parent, unless the check at path
// failed (not empty) failed: then n and its children only say so.
func (e *evaluator) eval(ctx context.Context, n node, parent, failed string, fresh bool, ran map[string]bool) state.HealthCheck {
	path := n.name
	if parent != "" {
		path = parent + "/" + n.name
	}
	c := state.HealthCheck{Name: n.name}
	if failed != "" {
		c.Error = "dependency " + failed + " failed"
	} else {
		ran[path] = true
		m := e.memory[path]
		switch {
		case m != nil && m.target != n.target:
			// Another gateway or server: its history is not this one's.
			m = nil
			fallthrough
		case m == nil:
			m = &memory{target: n.target}
			e.memory[path] = m
			fallthrough
		case !n.probe || fresh:
			e.test(ctx, n, m, &c)
			m.shown = c
		default:
			c = m.shown
		}
		if !c.OK {
			failed = path
		}
	}
	for _, child := range n.children {
		cc := e.eval(ctx, child, path, failed, fresh, ran)
		if !cc.OK {
			c.OK = false
		}
		c.Children = append(c.Children, cc)
	}
	return c
}

// test runs n's test and reports it in c, with hysteresis from m.
func (e *evaluator) test(ctx context.Context, n node, m *memory, c *state.HealthCheck) {
	r := n.test(ctx)
	switch {
	case r.err == nil:
		*m = memory{ok: true, last: r, target: m.target}
		c.OK, c.Summary, c.Notice = true, r.summary, r.notice
	case m.ok && m.fails+1 < max(n.failAfter, 1):
		// Tolerated: reported as passing, with the failure as a
		// notice, until it happens failAfter times in a row.
		m.fails++
		c.OK, c.Summary = true, m.last.summary
		c.Notice = fmt.Sprintf("%v (failed %d time(s) in a row; it fails after %d)", r.err, m.fails, n.failAfter)
	default:
		m.ok = false
		m.fails++
		c.Error = r.err.Error()
	}
}
