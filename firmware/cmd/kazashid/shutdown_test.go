package main

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kazashi/kazashi/gateway/mqtt/mqtttest"
	"github.com/kazashi/kazashi/gateway/outbox"
)

// Acceptance (issue 7): shutdown always finishes within the configured
// grace period, whatever the broker does. The daemon runs with
// shutdown_grace 1s and a tap waiting in its outbox; then ctx ends (what
// SIGTERM does in main) while the broker
//   - accepts TCP and never answers (no CONNACK: the daemon is still
//     connecting),
//   - stops answering after the connection came up (a black hole: the
//     pending event's PUBACK and the offline status's never come),
//   - is gone (connection refused).
//
// The bound asserted is the contract (grace) plus slack for the reader's
// release and scheduling, not a performance figure.
func TestDaemonShutdownWithinGrace(t *testing.T) {
	const grace = time.Second
	const slack = 500 * time.Millisecond
	for _, tc := range []string{"silent", "blackhole", "refused"} {
		t.Run(tc, func(t *testing.T) {
			dir := t.TempDir()
			var broker string
			var proxy *mqtttest.Proxy
			switch tc {
			case "silent":
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						t.Cleanup(func() { c.Close() }) // held open, never answered
					}
				}()
				broker = "tcp://" + ln.Addr().String()
			case "blackhole":
				m := mqtttest.StartMosquitto(t)
				proxy = mqtttest.StartProxy(t, m.URL())
				broker = proxy.URL()
			case "refused":
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				broker = "tcp://" + ln.Addr().String()
				ln.Close()
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pki, s, card, link := simWithValidCard(t, ctx, dir)
			cfg := writeConfig(t, dir, pki, link, broker, filepath.Join(dir, "run", "holder.sock"),
				rigOptions{profile: "card-check", inputTimeout: "10s", poll: "1s", top: `"shutdown_grace": "1s"`})
			stdout, stderr := &mqtttest.Buffer{}, &mqtttest.Buffer{}
			done := make(chan error, 1)
			go func() { done <- run(ctx, []string{"-config", cfg}, stdout, stderr) }()
			wait := func(b *mqtttest.Buffer, what string) {
				t.Helper()
				deadline := time.Now().Add(15 * time.Second)
				for !strings.Contains(b.String(), what) {
					if time.Now().After(deadline) {
						t.Fatalf("%q not seen within 15 s\nstdout:\n%s\nstderr:\n%s", what, stdout, stderr)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			if tc == "blackhole" {
				wait(stderr, "connected to the MQTT broker")
				proxy.Blackhole(true)
			}
			s.Field().Place(card, 0)
			wait(stdout, "[screen] accepted (ok)")
			if tc == "blackhole" {
				wait(stderr, "publish failed, will retry")
				// And a second tap in flight while shutting down.
				s.Remove()
				wait(stdout, "[screen] ready")
				s.Field().Place(card, 0)
				wait(stdout, "[screen] reading")
			}
			t0 := time.Now()
			cancel()
			select {
			case err := <-done:
				el := time.Since(t0)
				if err != nil {
					t.Fatalf("daemon: %v", err)
				}
				if el > grace+slack {
					t.Fatalf("shutdown took %v with shutdown_grace %v (broker %s)\nstderr:\n%s", el, grace, tc, stderr)
				}
				t.Logf("broker %s: shutdown in %v", tc, el.Round(time.Millisecond))
				// What could not be sent is kept for the next start.
				ob, err := outbox.Open(filepath.Join(dir, "state", "outbox.db"), outbox.Options{})
				if err != nil {
					t.Fatalf("outbox after shutdown: %v", err)
				}
				st, err := ob.Stats()
				ob.Close()
				if err != nil || st.Depth < 1 || st.Depth > 2 {
					t.Fatalf("outbox after shutdown: %+v %v, want the accepted tap kept", st, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("daemon still running 10 s after ctx ended (broker %s)\nstderr:\n%s", tc, stderr)
			}
		})
	}
}
