// Package broker embeds an MQTT broker (mochi-mqtt) for the demo and for
// kiosks with no configured broker. It has no authentication, so it only
// listens on loopback; production fleets use Mosquitto with mutual TLS.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// ErrNotLoopback is returned by Start for a listen address that is not a
// loopback IP (or "localhost"): anyone on the network could publish and
// subscribe without credentials.
var ErrNotLoopback = errors.New("broker: listen address is not loopback (the embedded broker has no authentication)")

// Broker is a running embedded broker.
type Broker struct {
	srv       *mochi.Server
	addr      string
	closeOnce sync.Once
}

// Start listens on addr ("127.0.0.1:1883"; port 0 picks a free port;
// "localhost" means 127.0.0.1) and serves MQTT 3.1.1/5 to anyone who can
// reach it. ctx bounds startup only; the broker runs until Close. logger
// receives the broker's warnings and errors (packet contents redacted); nil
// discards them.
func Start(ctx context.Context, addr string, logger *slog.Logger) (*Broker, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("broker: start: %w", err)
	}
	listen, err := loopbackAddr(addr)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv := mochi.New(&mochi.Options{
		Logger: slog.New(&quietHandler{inner: logger.Handler(), min: slog.LevelWarn}),
	})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		return nil, fmt.Errorf("broker: allow-all hook: %w", err)
	}
	l := listeners.NewTCP(listeners.Config{Type: listeners.TypeTCP, ID: "loopback", Address: listen})
	if err := srv.AddListener(l); err != nil { // binds the socket
		return nil, fmt.Errorf("broker: listen %s: %w", listen, err)
	}
	if err := srv.Serve(); err != nil { // returns once the accept loop runs
		_ = srv.Close()
		return nil, fmt.Errorf("broker: serve: %w", err)
	}
	return &Broker{srv: srv, addr: "tcp://" + l.Address()}, nil
}

// Addr is the broker URL for clients, e.g. "tcp://127.0.0.1:41234".
func (b *Broker) Addr() string { return b.addr }

// Close stops listening and drops every client connection. It is idempotent
// and always returns nil (the error is for io.Closer).
func (b *Broker) Close() error {
	b.closeOnce.Do(func() { _ = b.srv.Close() })
	return nil
}

// loopbackAddr validates addr and returns the address to bind.
func loopbackAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("broker: listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		host = "127.0.0.1" // do not let a resolver decide
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("%w: %q", ErrNotLoopback, addr)
	}
	return net.JoinHostPort(ip.String(), port), nil
}

// allowAll lets every client connect and use every topic. It stands in for
// mochi's hooks/auth.AllowHook, whose package also pulls in a YAML parser this
// module does not depend on.
type allowAll struct{ mochi.HookBase }

func (*allowAll) ID() string { return "kazashi-allow-all" }

func (*allowAll) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

func (*allowAll) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }

func (*allowAll) OnACLCheck(*mochi.Client, string, bool) bool { return true }
