package brokertest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kazashi/kazashi/gateway/mqtt"
	"github.com/kazashi/kazashi/gateway/mqtt/mqtttest"
	"github.com/kazashi/kazashi/gateway/topics"
)

const (
	prefix  = "kazashi" // the prefix the shipped ACL is written for
	devA    = "kiosk-a"
	devB    = "kiosk-b"
	backend = "kazashi-backend" // the backend's CN in the shipped ACL

	// waitLong bounds every wait for a broker-side effect; on loopback they
	// take milliseconds, so reaching it means the effect will not come.
	waitLong = 10 * time.Second
	// refusedWait bounds a Connect that is expected to fail: mqtt.Connect
	// retries TLS failures until its ctx ends (a kiosk may not know the
	// date yet), so the test gives it time for a few attempts only.
	refusedWait = 1500 * time.Millisecond

	// maxPacketSize is the shipped max_packet_size; TestShippedConf checks
	// that the file says so.
	maxPacketSize = 262144
)

// world is a broker running the shipped configuration and the certificates
// of its clients.
type world struct {
	m       *mqtttest.Mosquitto
	url     string
	ca      *CA  // issues the broker's and the clients' certificates
	other   *CA  // an unrelated CA with a client certificate of the same CN
	a, b    Leaf // device certificates, CN = device id
	backend Leaf
	foreign Leaf // CN devA, issued by other
}

// startBroker starts Mosquitto with the shipped configuration
// (StartShipped) and generates its clients' certificates.
func startBroker(t *testing.T) *world {
	t.Helper()
	sh := StartShipped(t)
	w := &world{m: sh.Mosquitto, url: sh.URL, ca: sh.CA}
	w.a = w.ca.Client(t, devA)
	w.b = w.ca.Client(t, devB)
	w.backend = w.ca.Client(t, backend)
	otherDir := filepath.Join(sh.Dir, "other")
	if err := os.Mkdir(otherDir, 0o755); err != nil {
		t.Fatal(err)
	}
	w.other = NewCA(t, otherDir, "ca", "Kazashi test device CA") // same name, other key
	w.foreign = w.other.Client(t, devA)
	return w
}

// files returns the TLS files of a client certificate under this world's CA.
func (w *world) files(l Leaf) mqtt.TLSFiles {
	return mqtt.TLSFiles{CAFile: w.ca.CertFile, CertFile: l.CertFile, KeyFile: l.KeyFile}
}

// options returns client options for the broker with the TLS config of f.
func (w *world) options(t *testing.T, clientID string, f mqtt.TLSFiles) (mqtt.Options, *mqtttest.Buffer) {
	t.Helper()
	cfg, err := f.Config()
	if err != nil {
		t.Fatalf("TLSFiles.Config: %v", err)
	}
	log := new(mqtttest.Buffer)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("client %s log:\n%s", clientID, log.String())
		}
	})
	return mqtt.Options{
		Broker:               w.url,
		TLSConfig:            cfg,
		ClientID:             clientID,
		KeepAlive:            5 * time.Second,
		ConnectTimeout:       2 * time.Second,
		MaxReconnectInterval: 300 * time.Millisecond,
		Logger:               slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, log
}

// client is a connected mqtt.Client with its log.
type client struct {
	*mqtt.Client
	log  *mqtttest.Buffer
	tree topics.Tree // the device's topics (devices only)
}

// device connects as a device with its certificate: client id = device id,
// retained status on its status topic, as the daemon does.
func (w *world) device(t *testing.T, id string, l Leaf) *client {
	t.Helper()
	tree, err := topics.New(prefix, id)
	if err != nil {
		t.Fatal(err)
	}
	o, log := w.options(t, id, w.files(l))
	o.StatusTopic = tree.Status()
	o.StatusInfo = mqtt.Status{Device: id, Firmware: "test"}
	return &client{Client: connect(t, o), log: log, tree: tree}
}

// backendClient connects with the backend certificate.
func (w *world) backendClient(t *testing.T) *client {
	t.Helper()
	o, log := w.options(t, backend, w.files(w.backend))
	return &client{Client: connect(t, o), log: log}
}

func connect(t *testing.T, o mqtt.Options) *mqtt.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, err := mqtt.Connect(ctx, o)
	if err != nil {
		t.Fatalf("Connect %s: %v", o.ClientID, err)
	}
	t.Cleanup(c.Close)
	return c
}

// inbox collects the messages of a subscription.
type inbox struct {
	mu   sync.Mutex
	msgs []msg
	note chan struct{} // signalled on every message
}

type msg struct{ topic, payload string }

func newInbox() *inbox { return &inbox{note: make(chan struct{}, 1)} }

func (in *inbox) handle(topic string, payload []byte) {
	in.mu.Lock()
	in.msgs = append(in.msgs, msg{topic, string(payload)})
	in.mu.Unlock()
	select {
	case in.note <- struct{}{}:
	default:
	}
}

// all returns the messages received so far.
func (in *inbox) all() []msg {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]msg(nil), in.msgs...)
}

// waitFor waits until a message with payload p has arrived and returns all
// messages received so far.
func (in *inbox) waitFor(t *testing.T, p string) []msg {
	t.Helper()
	deadline := time.NewTimer(waitLong)
	defer deadline.Stop()
	for {
		got := in.all()
		for _, m := range got {
			if m.payload == p {
				return got
			}
		}
		select {
		case <-in.note:
		case <-deadline.C:
			t.Fatalf("message %q not received within %v; got %v", p, waitLong, got)
		}
	}
}

func subscribe(t *testing.T, c *client, filter string, in *inbox) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	return c.Subscribe(ctx, filter, 1, in.handle)
}

func publish(t *testing.T, c *client, topic, payload string, retained bool) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	return c.Publish(ctx, topic, []byte(payload), 1, retained)
}

// mustSubscribe subscribes and fails the test if the broker refuses.
func mustSubscribe(t *testing.T, c *client, filter string, in *inbox) {
	t.Helper()
	if err := subscribe(t, c, filter, in); err != nil {
		t.Fatalf("Subscribe %q: %v", filter, err)
	}
}

// mustPublish publishes at QoS 1 and fails the test unless PUBACK came.
func mustPublish(t *testing.T, c *client, topic, payload string, retained bool) {
	t.Helper()
	if err := publish(t, c, topic, payload, retained); err != nil {
		t.Fatalf("Publish %q: %v", topic, err)
	}
}

// barrier publishes two markers on topic and waits until in has the second.
// Mosquitto forwards the messages of one connection in order, so anything
// the broker routed to in's client before the markers has been handed to
// its handler goroutine by then; the second marker's round trip gives such
// a goroutine time to record it. The absence of a message is asserted only
// after a barrier, never after a sleep.
func barrier(t *testing.T, c *client, topic string, in *inbox) []msg {
	t.Helper()
	n := barrierSeq.Add(1)
	mustPublish(t, c, topic, fmt.Sprintf("barrier-%d-1", n), false)
	mustPublish(t, c, topic, fmt.Sprintf("barrier-%d-2", n), false)
	return in.waitFor(t, fmt.Sprintf("barrier-%d-2", n))
}

var barrierSeq atomic.Int64

// payloads returns the payloads of msgs that are not barriers.
func payloads(msgs []msg) []string {
	var p []string
	for _, m := range msgs {
		if !strings.HasPrefix(m.payload, "barrier-") {
			p = append(p, m.payload)
		}
	}
	return p
}

// has reports whether msgs holds payload p.
func has(msgs []msg, p string) bool {
	for _, m := range msgs {
		if m.payload == p {
			return true
		}
	}
	return false
}

// waitConnected polls until c has a connection again (it reconnects by
// itself after a loss).
func waitConnected(t *testing.T, c *client) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !c.Connected() {
		if time.Now().After(deadline) {
			t.Fatalf("client not reconnected within %v", waitLong)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not an assertion
	}
}

// waitLogCount polls until c's log has n lines containing s.
func waitLogCount(t *testing.T, c *client, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for strings.Count(c.log.String(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("client log has %d of %d %q lines after %v:\n%s", strings.Count(c.log.String(), s), n, s, waitLong, c.log.String())
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not an assertion
	}
}

// waitBrokerLogCount polls until the broker's log has n lines containing s.
func waitBrokerLogCount(t *testing.T, w *world, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for strings.Count(w.m.Log(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("broker log has %d of %d %q lines after %v", strings.Count(w.m.Log(), s), n, s, waitLong)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not an assertion
	}
}

// refusedConnect expects mqtt.Connect with o to fail within refusedWait
// and returns its error.
func refusedConnect(t *testing.T, o mqtt.Options) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), refusedWait)
	defer cancel()
	c, err := mqtt.Connect(ctx, o)
	if err == nil {
		c.Close()
		t.Fatalf("Connect %s succeeded, want it refused", o.ClientID)
	}
	return err
}
