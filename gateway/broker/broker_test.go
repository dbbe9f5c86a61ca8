package broker_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kazashi/kazashi/gateway/broker"
	"github.com/kazashi/kazashi/gateway/mqtt"
)

// waitLong bounds waits for loopback round trips that take milliseconds.
const waitLong = 10 * time.Second

func TestEmbeddedBrokerRoundTrip(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	b, err := broker.Start(ctx, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer b.Close()
	if !regexp.MustCompile(`^tcp://127\.0\.0\.1:[1-9][0-9]*$`).MatchString(b.Addr()) {
		t.Fatalf("Addr() = %q", b.Addr())
	}

	sub, err := mqtt.Connect(ctx, mqtt.Options{Broker: b.Addr(), ClientID: "kz-sub", StatusTopic: "kazashi/sub/status"})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer sub.Close()
	pub, err := mqtt.Connect(ctx, mqtt.Options{Broker: b.Addr(), ClientID: "kz-pub"})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer pub.Close()

	got := make(chan []byte, 1)
	if err := sub.Subscribe(ctx, "kazashi/+/events", 1, func(_ string, p []byte) { got <- p }); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	payload := []byte{0, 1, 2, 0xff, '{', '}'}
	if err := pub.Publish(ctx, "kazashi/dev1/events", payload, 1, false); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	select {
	case p := <-got:
		if !bytes.Equal(p, payload) {
			t.Errorf("payload = % x, want % x", p, payload)
		}
	case <-time.After(waitLong):
		t.Fatal("message not received")
	}

	// Retained status works through the embedded broker as well.
	status := make(chan []byte, 1)
	if err := pub.Subscribe(ctx, "kazashi/sub/status", 1, func(_ string, p []byte) { status <- p }); err != nil {
		t.Fatalf("Subscribe status: %v", err)
	}
	select {
	case p := <-status:
		if string(p) != `{"schema":"kazashi.status/v1","online":true}` {
			t.Errorf("status = %s", p)
		}
	case <-time.After(waitLong):
		t.Fatal("retained status not received")
	}
}

func TestStartRefusesNonLoopback(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:1883", "10.0.0.1:0", "example.com:1883"} {
		b, err := broker.Start(context.Background(), addr, nil)
		if err == nil {
			b.Close()
			t.Errorf("Start(%q) succeeded", addr)
			continue
		}
		if !errors.Is(err, broker.ErrNotLoopback) {
			t.Errorf("Start(%q): %v, want ErrNotLoopback", addr, err)
		}
	}
	if _, err := broker.Start(context.Background(), "127.0.0.1", nil); err == nil || !strings.HasPrefix(err.Error(), "broker: ") {
		t.Errorf("Start without port: %v", err)
	}
}

func TestStartLocalhostAndClose(t *testing.T) {
	t.Parallel()
	b, err := broker.Start(context.Background(), "localhost:0", nil)
	if err != nil {
		t.Fatalf("Start(localhost:0): %v", err)
	}
	if !strings.HasPrefix(b.Addr(), "tcp://127.0.0.1:") {
		t.Errorf("Addr() = %q", b.Addr())
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if c, err := mqtt.Connect(ctx, mqtt.Options{Broker: b.Addr(), ClientID: "kz-late"}); err == nil {
		c.Close()
		t.Error("Connect after Close succeeded")
	}
}

func TestStartCancelledCtx(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := broker.Start(ctx, "127.0.0.1:0", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Start with cancelled ctx: %v", err)
	}
}

// TestLogQuietAndRedacted: info chatter is dropped and packet contents never
// reach the log, even when mochi logs a packet on an error.
func TestLogQuietAndRedacted(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := broker.Start(context.Background(), "127.0.0.1:0", l)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	b.Close()
	if strings.Contains(buf.String(), "level=INFO") {
		t.Errorf("info-level broker chatter logged:\n%s", buf.String())
	}
}
