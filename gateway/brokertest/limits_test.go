package brokertest

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/kazashi/kazashi/gateway/mqtt"
	"github.com/kazashi/kazashi/gateway/topics"
)

// Facts for acceptance 3 (poison messages): what the device sees when the
// broker will not take a message.

// maxPayload is the largest QoS 1 payload Mosquitto 2.0.11 accepts on topic
// under max_packet_size. It compares the packet's remaining length plus one
// (the fixed header's first byte, not its 1 to 4 length bytes) with the
// limit, so a packet of remaining length R passes if R+1 <= max_packet_size,
// with R = 2+len(topic) (topic name) + 2 (packet identifier) + payload
// (MQTT 3.1.1 §3.3.2, §3.3.3). Pinned by TestMosquittoOversizePublish.
func maxPayload(topic string) int { return maxPacketSize - 1 - (2 + len(topic)) - 2 }

// connectionFailure reports whether err is how mqtt.Client.Publish reports
// a connection that died under the publish: ErrNotConnected, or (today,
// see TestMosquittoOversizePublish) the raw write error of the dying TLS
// connection, which gateway/mqtt does not classify yet.
func connectionFailure(err error) bool {
	return errors.Is(err, mqtt.ErrNotConnected) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// TestMosquittoOversizePublish: a PUBLISH larger than max_packet_size is
// not acknowledged: Mosquitto closes the connection ("Client <id>
// disconnected due to oversize packet."). mosquitto.conf(5),
// max_packet_size: "If a client sends a packet which is larger than this
// value, it will be disconnected ... it is not possible to notify clients
// using MQTT v3.1.1 or MQTT v3.1 of the limit." MQTT 3.1.1 has no way to
// refuse a single PUBLISH; closing the network connection is its answer to
// a packet the server will not process (§4.8).
//
// So the device sees the same as a network failure: Publish returns an
// error, never nil; the client reconnects by itself; and resending the same
// message fails the same way every time. Which error Publish returns is a
// race between paho's write and the broker's close: ErrNotConnected
// ("connection lost before Publish completed") when paho notices the loss
// first, otherwise the raw write error (connection reset by peer, broken
// pipe, use of closed network connection) that does NOT wrap
// ErrNotConnected. The only reliable test for "too large" is therefore the
// size itself, checked by the device before it sends.
func TestMosquittoOversizePublish(t *testing.T) {
	t.Parallel()
	w := startBroker(t)
	be := w.backendClient(t)
	events := newInbox()
	mustSubscribe(t, be, topics.EventsFilter(prefix), events)
	a := w.device(t, devA, w.a)
	topic := a.tree.Events()

	// The largest payload the limit allows is delivered.
	largest := make([]byte, maxPayload(topic))
	copy(largest, "largest")
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := a.Publish(ctx, topic, largest, 1, false); err != nil {
		t.Fatalf("Publish of %d bytes (packet at the limit): %v", len(largest), err)
	}
	if got := events.waitFor(t, string(largest)); len(got) != 1 {
		t.Fatalf("backend got %d messages, want the largest one", len(got))
	}

	// One byte more: no PUBACK, the connection is closed, every time.
	over := make([]byte, maxPayload(topic)+1)
	copy(over, "oversize")
	var kinds []string
	for attempt := range 3 {
		// A fresh connection each time: until paho has noticed the
		// broker's close, a publish on the dead connection fails with a
		// raw write error too, whatever its size (that is what a good
		// message right after an oversize one can get).
		waitLogCount(t, a, "mqtt: reconnected", attempt)
		waitConnected(t, a)
		err := a.Publish(ctx, topic, over, 1, false)
		if err == nil {
			t.Fatalf("attempt %d: Publish of %d bytes returned nil: the broker acknowledged an oversize packet", attempt, len(over))
		}
		if !connectionFailure(err) {
			t.Fatalf("attempt %d: Publish error %v is not a connection failure", attempt, err)
		}
		kinds = append(kinds, map[bool]string{true: "ErrNotConnected", false: "raw write error"}[errors.Is(err, mqtt.ErrNotConnected)])
	}
	t.Logf("oversize publish errors: %v", kinds)
	// The broker may log the disconnect just after the client saw it.
	waitBrokerLogCount(t, w, "Client "+devA+" disconnected due to oversize packet.", 3)

	// The client reconnects by itself and carries on; the oversize
	// message never arrived.
	waitLogCount(t, a, "mqtt: reconnected", 3)
	waitConnected(t, a)
	mustPublish(t, a, topic, "after", false)
	got := events.waitFor(t, "after")
	for _, m := range got {
		if len(m.payload) > len(largest) {
			t.Errorf("backend received an oversize payload of %d bytes", len(m.payload))
		}
	}
}

// TestMosquittoACLDeniedPublish: a PUBLISH the ACL denies is acknowledged
// and dropped, at QoS 1 and 0 alike, and the connection stays up. MQTT
// 3.1.1 §3.3.5 [MQTT-3.3.5-2]: the server "MUST either make a positive
// acknowledgement, according to the normal QoS rules, or close the Network
// Connection"; Mosquitto 2.0.11 acknowledges (it logs, at debug level only,
// "Denied PUBLISH" and a PUBACK with reason 135, which a 3.1.1 PUBACK
// cannot carry). So the device cannot learn from the broker that a message
// was refused: Publish returns nil, and the message is gone. The device
// must not publish where the ACL denies it; topics.Tree.Owns is that check,
// and this test pins that it agrees with the shipped ACL: every topic Owns
// accepts is delivered, every other one is acknowledged and dropped.
func TestMosquittoACLDeniedPublish(t *testing.T) {
	t.Parallel()
	w := startBroker(t)
	be := w.backendClient(t)
	seen := newInbox() // what the backend can read of the devices' topics
	for _, f := range []string{"kazashi/+/events", "kazashi/+/status", "kazashi/+/status/#", "kazashi/+/telemetry", "kazashi/+/reply/#"} {
		mustSubscribe(t, be, f, seen)
	}
	a := w.device(t, devA, w.a)
	b := w.device(t, devB, w.b)
	// Commands are read by their device only; A and B watch their own.
	mustSubscribe(t, a, a.tree.CommandFilter(), seen)
	mustSubscribe(t, b, b.tree.CommandFilter(), seen)

	probes := []string{
		a.tree.Events(), a.tree.Status(), a.tree.Health(), a.tree.Revocation(), a.tree.Telemetry(),
		a.tree.Reply("ping"),
		a.tree.Command("ping"),   // own subtree, but commands come from the backend
		a.tree.Root() + "/other", // own subtree, not in the topic tree
		b.tree.Events(), b.tree.Status(), b.tree.Health(), b.tree.Telemetry(),
		b.tree.Reply("ping"), b.tree.Command("ping"),
	}
	for i, topic := range probes {
		for _, qos := range []byte{1, 0} {
			payload := "probe-" + string(rune('a'+i)) + "-q" + string(rune('0'+qos))
			ctx, cancel := context.WithTimeout(context.Background(), waitLong)
			err := a.Publish(ctx, topic, []byte(payload), qos, false)
			cancel()
			if err != nil {
				t.Fatalf("Publish %s QoS %d: %v; want nil (denied or not, the broker acknowledges)", topic, qos, err)
			}
		}
	}
	got := barrier(t, a, a.tree.Events(), seen)
	for i, topic := range probes {
		for _, qos := range []byte{1, 0} {
			payload := "probe-" + string(rune('a'+i)) + "-q" + string(rune('0'+qos))
			if delivered, owns := has(got, payload), a.tree.Owns(topic); delivered != owns {
				t.Errorf("A publishing %s at QoS %d: delivered %v, but Tree.Owns says %v", topic, qos, delivered, owns)
			}
		}
	}
	// The connection survived every denial: no reconnect, and the broker
	// logged no disconnect of A.
	if log := a.log.String(); strings.Contains(log, "connection lost") || strings.Contains(log, "reconnected") {
		t.Errorf("A's connection dropped during denied publishes:\n%s", log)
	}
	if strings.Contains(w.m.Log(), "Client "+devA+" disconnected") {
		t.Errorf("broker disconnected A:\n%s", w.m.Log())
	}
}
