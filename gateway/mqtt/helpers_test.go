package mqtt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/kazashi/kazashi/gateway/mqtt"
	"github.com/kazashi/kazashi/gateway/mqtt/mqtttest"
)

// waitLong bounds every wait for a broker-side effect in these tests; on a
// loopback broker they take milliseconds, so hitting it means a bug.
const waitLong = 10 * time.Second

var clientSeq atomic.Int64

// options returns Options for a test client on broker with fast timers:
// reconnect backoff capped at 300 ms so broker restarts heal quickly.
func options(t testing.TB, broker string) mqtt.Options {
	return mqtt.Options{
		Broker:               broker,
		ClientID:             fmt.Sprintf("kz-test-%d", clientSeq.Add(1)),
		KeepAlive:            5 * time.Second,
		ConnectTimeout:       2 * time.Second,
		MaxReconnectInterval: 300 * time.Millisecond,
		Logger:               testLogger(t),
	}
}

// connect connects a client and closes it when the test ends.
func connect(t testing.TB, o mqtt.Options) *mqtt.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, err := mqtt.Connect(ctx, o)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// testLogger collects the client's log and prints it only if the test fails.
func testLogger(t testing.TB) *slog.Logger { return mqtttest.Logger(t) }

type message struct {
	topic    string
	payload  []byte
	retained bool
}

// observe subscribes to filter with a plain paho client, independent of the
// client under test, and returns what arrives (retained messages first).
func observe(t testing.TB, broker, filter string) <-chan message {
	t.Helper()
	ch := make(chan message, 100)
	o := paho.NewClientOptions().AddBroker(broker).
		SetClientID(fmt.Sprintf("kz-observer-%d", clientSeq.Add(1))).
		SetAutoReconnect(false).SetOrderMatters(true)
	pc := paho.NewClient(o)
	if tok := pc.Connect(); !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatalf("observer connect: %v", tok.Error())
	}
	t.Cleanup(func() { pc.Disconnect(100) })
	tok := pc.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		select {
		case ch <- message{topic: m.Topic(), payload: m.Payload(), retained: m.Retained()}:
		default: // test stopped reading
		}
	})
	if !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatalf("observer subscribe: %v", tok.Error())
	}
	return ch
}

// waitStatus reads status documents until one matches want.
func waitStatus(t testing.TB, ch <-chan message, want mqtt.Status) message {
	t.Helper()
	timeout := time.After(waitLong)
	var seen []string
	for {
		select {
		case m := <-ch:
			var got mqtt.Status
			if err := json.Unmarshal(m.payload, &got); err != nil {
				t.Fatalf("status %q is not JSON: %v", m.payload, err)
			}
			if got == want {
				return m
			}
			seen = append(seen, string(m.payload))
		case <-timeout:
			t.Fatalf("no status %+v within %v; saw %s", want, waitLong, strings.Join(seen, ", "))
		}
	}
}

// eventually polls cond every 10 ms until it holds or waitLong passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitLong)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}
