package main

import (
	"fmt"
	"io"
	"sync"

	"github.com/kazashi/kazashi/firmware/tap"
)

// consoleDisplay prints screen changes, one line each, for a headless
// kiosk or the demo; the kiosk's web screen plugs in the same interface.
type consoleDisplay struct {
	mu   sync.Mutex
	w    io.Writer
	last tap.Screen
}

func (d *consoleDisplay) Show(s tap.Screen) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s == d.last {
		return
	}
	d.last = s
	if s.State == tap.StateResult {
		fmt.Fprintf(d.w, "[screen] %s (%s): %s\n", s.Outcome, s.Reason, s.Message)
		return
	}
	fmt.Fprintf(d.w, "[screen] %s: %s\n", s.State, s.Message)
}
