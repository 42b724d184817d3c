package guard

import "context"

// The low-level steps of Do, for the rule tests: production code has only Do.

// Allow is allow.
func (g *Guard) Allow() error { return g.allow() }

// Report is report.
func (g *Guard) Report(err error) Kind { return g.report(err) }

// Success is success.
func (g *Guard) Success() { g.success() }

// Wait is wait.
func (g *Guard) Wait(ctx context.Context) error { return g.wait(ctx) }
