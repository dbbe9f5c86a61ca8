package brokertest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"

	"github.com/kazashi/kazashi/gateway/mqtt"
	"github.com/kazashi/kazashi/gateway/topics"
)

// Acceptance 4 against Mosquitto running the shipped kazashi.conf and acl.
//
// What Mosquitto 2.0.11 does, as these tests pin it:
//   - A PUBLISH the ACL denies is acknowledged (PUBACK) and dropped; the
//     connection stays up. MQTT 3.1.1 §3.3.5 allows this ("either make a
//     positive acknowledgement ... or close the Network Connection",
//     [MQTT-3.3.5-2]); the broker logs "Denied PUBLISH" at debug level.
//   - A SUBSCRIBE is never refused by acl_file, whatever the filter (even
//     "#" or another device's subtree): the SUBACK grants it. The ACL is
//     applied to every message instead, when it is delivered (retained
//     messages included), so such a subscription receives nothing it may
//     not read. mosquitto.conf(5) documents only read/write access for
//     acl_file; it has no subscribe check.
//   - A shared subscription $share/<group>/<filter> is likewise granted,
//     and each message is checked against the reader's read access on the
//     message's own topic: the $share/<group>/ prefix plays no part, so the
//     backend's "topic read kazashi/+/events" is all it needs. The man page
//     of 2.0.11 does not describe this; TestMosquittoSharedSubscriptionACL
//     is the evidence.

// TestMosquittoDeviceIsolation: device A can publish its own events to the
// backend but cannot publish, subscribe or read under device B's topics,
// nor send B commands, nor overwrite B's retained status.
func TestMosquittoDeviceIsolation(t *testing.T) {
	t.Parallel()
	w := startBroker(t)
	be := w.backendClient(t)
	events := newInbox()
	mustSubscribe(t, be, topics.Shared("kazashi-test", topics.EventsFilter(prefix)), events)

	a := w.device(t, devA, w.a)
	b := w.device(t, devB, w.b)
	bCmds := newInbox()
	mustSubscribe(t, b, b.tree.CommandFilter(), bCmds)

	// A spies on B's subtree, on every device's commands and on everything:
	// the broker grants each subscription (no SUBACK 0x80, so no
	// mqtt.ErrRefused) ...
	spy := newInbox()
	for _, f := range []string{"kazashi/" + devB + "/#", "kazashi/+/cmd/#", "kazashi/+/status", "#"} {
		if err := subscribe(t, a, f, spy); err != nil {
			t.Fatalf("A subscribing %q: %v; Mosquitto 2.0.11 grants every SUBSCRIBE under acl_file", f, err)
		}
	}

	// A's own event reaches the backend.
	mustPublish(t, a, a.tree.Events(), "a-own", false)
	events.waitFor(t, "a-own")

	// A forging B's event, B's retained status and a command to B: each is
	// acknowledged (Publish returns nil) ...
	for _, p := range []struct{ topic, payload string }{
		{b.tree.Events(), "forged-event"},
		{b.tree.Command("reboot"), "forged-cmd"},
	} {
		if err := publish(t, a, p.topic, p.payload, false); err != nil {
			t.Fatalf("A publishing to %s: %v; want the broker's PUBACK (ack and drop)", p.topic, err)
		}
	}
	if err := publish(t, a, b.tree.Status(), `{"schema":"kazashi.status/v1","online":false,"reason":"forged"}`, true); err != nil {
		t.Fatalf("A publishing B's retained status: %v", err)
	}

	// ... and dropped: after a barrier from A, the backend has only A's
	// events, and B has no command from A.
	got := barrier(t, a, a.tree.Events(), events)
	if p := payloads(got); len(p) != 1 || p[0] != "a-own" {
		t.Errorf("backend received %v, want only A's own event", got)
	}
	for _, m := range got {
		if m.topic != a.tree.Events() {
			t.Errorf("backend received %q on %s: A published under another device", m.payload, m.topic)
		}
	}
	// The backend's command to B arrives; A's forged one before it did not.
	mustPublish(t, be, b.tree.Command("reboot"), "real-cmd", false)
	if got := bCmds.waitFor(t, "real-cmd"); has(got, "forged-cmd") {
		t.Errorf("B received A's forged command: %v", got)
	}

	// B's retained status is still B's own, for the backend and for B
	// itself (read access to its own status subtree).
	for _, c := range []*client{be, b} {
		st := newInbox()
		mustSubscribe(t, c, b.tree.Status(), st)
		got := st.waitFor(t, `{"schema":"kazashi.status/v1","online":true,"device_id":"kiosk-b","firmware":"test"}`)
		if has(got, `{"schema":"kazashi.status/v1","online":false,"reason":"forged"}`) {
			t.Errorf("A overwrote B's retained status: %v", got)
		}
	}

	// A's spying subscriptions received nothing of B's: a command to A and
	// a status change of B (both would match "#") are barriers; A may read
	// only its own commands and status.
	mustPublish(t, be, b.tree.Command("ping"), "cmd-for-b", false)
	mustPublish(t, b, b.tree.Health(), "b-health", true)
	got = barrier(t, be, a.tree.Command("ping"), spy)
	for _, m := range got {
		if !strings.HasPrefix(m.topic, a.tree.Root()+"/") {
			t.Errorf("A received %q on %s, outside its own subtree", m.payload, m.topic)
		}
	}
}

// TestMosquittoClientCertificateRequired: without a client certificate, or
// with one from another CA (even with the same CA name and the device's
// CN), the TLS handshake fails and no MQTT session is ever established.
//
// Under TLS 1.3 the server checks the client certificate after the client
// has finished its side of the handshake (RFC 8446 §2, §4.4.2.4), so the
// client learns of the refusal on its first write or read: either the
// broker's alert or, when the broker's close wins the race, a connection
// reset. Under TLS 1.2 the alert ends the handshake itself, so those cases
// pin the alert.
func TestMosquittoClientCertificateRequired(t *testing.T) {
	t.Parallel()
	w := startBroker(t)
	noCert := mqtt.TLSFiles{CAFile: w.ca.CertFile}
	foreign := mqtt.TLSFiles{CAFile: w.ca.CertFile, CertFile: w.foreign.CertFile, KeyFile: w.foreign.KeyFile}
	cases := []struct {
		name   string
		files  mqtt.TLSFiles
		tls12  bool
		url    string
		alert  string // the TLS alert the broker sends
		reset  bool   // a connection reset is an acceptable way to learn it
		logged string // what the broker logs
	}{
		{"no certificate", noCert, false, "", "tls: certificate required", true, "peer did not return a certificate"},
		{"no certificate TLS 1.2", noCert, true, "", "tls: handshake failure", false, "peer did not return a certificate"},
		{"other CA", foreign, false, "", "tls: unknown certificate authority", true, "certificate verify failed"},
		{"other CA TLS 1.2", foreign, true, "", "tls: unknown certificate authority", false, "certificate verify failed"},
		// Plain MQTT on the TLS port: the broker never sees a CONNECT.
		{"no TLS", noCert, false, "tcp://" + w.m.Addr(), "", true, "wrong version number"},
	}
	t.Run("group", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				o, _ := w.options(t, devA, tc.files)
				if tc.tls12 {
					o.TLSConfig.MaxVersion = tls.VersionTLS12
				}
				if tc.url != "" {
					o.Broker = tc.url
				}
				err := refusedConnect(t, o)
				if errors.Is(err, mqtt.ErrRefused) {
					t.Errorf("error wraps ErrRefused (a CONNACK refusal): %v", err)
				}
				alert := tc.alert != "" && strings.Contains(err.Error(), tc.alert)
				reset := tc.reset && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF))
				if !alert && !reset {
					t.Errorf("Connect error %q: want the alert %q (or, if allowed, a reset: %v)", err, tc.alert, tc.reset)
				}
			})
		}
	})
	log := w.m.Log()
	for _, tc := range cases {
		if !strings.Contains(log, tc.logged) {
			t.Errorf("broker log lacks %q (%s)", tc.logged, tc.name)
		}
	}
	if strings.Contains(log, "New client connected") {
		t.Errorf("the broker accepted an MQTT session:\n%s", log)
	}
}

// TestMosquittoBrokerCAPinned: a client that pins another CA refuses the
// real broker, even though that CA has the same name as the broker's.
func TestMosquittoBrokerCAPinned(t *testing.T) {
	t.Parallel()
	w := startBroker(t)
	o, _ := w.options(t, devA, mqtt.TLSFiles{CAFile: w.other.CertFile, CertFile: w.a.CertFile, KeyFile: w.a.KeyFile})
	err := refusedConnect(t, o)
	if !strings.Contains(err.Error(), "x509: certificate signed by unknown authority") {
		t.Errorf("Connect error %q: want the broker's certificate rejected", err)
	}
	// The pinned CA is the only root: the right one with a server name
	// that is not in the broker's certificate fails too.
	f := w.files(w.a)
	f.ServerName = "broker.example.com"
	o, _ = w.options(t, devA, f)
	if err := refusedConnect(t, o); !strings.Contains(err.Error(), "broker.example.com") {
		t.Errorf("Connect error %q: want a name mismatch for broker.example.com", err)
	}
}

// TestMosquittoIdentityFromCertificate: the MQTT username and password a
// client sends are ignored; the certificate's CN is its identity.
func TestMosquittoIdentityFromCertificate(t *testing.T) {
	t.Parallel()
	w := startBroker(t)
	be := w.backendClient(t)
	events := newInbox()
	mustSubscribe(t, be, topics.EventsFilter(prefix), events)
	b := w.device(t, devB, w.b)

	for _, username := range []string{devB, backend} {
		t.Run(username, func(t *testing.T) {
			o, _ := w.options(t, "impostor", w.files(w.a))
			o.Username, o.Password = username, "ignored"
			c := &client{Client: connect(t, o)}
			// Still A: B's topics are closed to it ...
			mustPublish(t, c, b.tree.Events(), "as-"+username, false)
			// ... and so is what the backend may read; A's own commands
			// are not (its CN, not the username, is %u).
			spy := newInbox()
			mustSubscribe(t, c, topics.EventsFilter(prefix), spy)
			mustSubscribe(t, c, "kazashi/"+devA+"/cmd/#", spy)
			mustPublish(t, b, b.tree.Events(), "b-event-"+username, false)
			mustPublish(t, c, "kazashi/"+devA+"/events", "a-"+username, false)
			got := events.waitFor(t, "a-"+username)
			if has(got, "as-"+username) {
				t.Errorf("username %q let A publish under B: %v", username, got)
			}
			if sp := barrier(t, be, "kazashi/"+devA+"/cmd/ping", spy); len(payloads(sp)) != 0 {
				t.Errorf("username %q let A read events: %v", username, sp)
			}
			c.Close()
		})
	}
	log := w.m.Log()
	if !strings.Contains(log, "as "+devA+" (p2, c1, k5, u'"+devA+"')") {
		t.Errorf("broker log does not show client id and username %s taken from the certificate:\n%s", devA, log)
	}
	if n := strings.Count(log, "u'"+devB+"'"); n != 1 {
		t.Errorf("%d connections authenticated as %s, want only B's own:\n%s", n, devB, log)
	}
}

// TestMosquittoClientIDTakeover: a device that connects with another
// client's id (the backend's, or another device's) neither disconnects it
// nor takes over its session: use_username_as_clientid makes the client id
// the certificate CN. Without that option Mosquitto disconnects the
// existing client (MQTT 3.1.1 §3.1.4, [MQTT-3.1.4-2]), and when the
// usernames differ it does not hand over the session: with the option
// removed, 6 of 7 events queued for the backend's persistent session never
// reached it.
func TestMosquittoClientIDTakeover(t *testing.T) {
	t.Parallel()
	w := startBroker(t)
	o, beLog := w.options(t, backend, w.files(w.backend))
	o.PersistentSession = true
	be := &client{Client: connect(t, o), log: beLog}
	events := newInbox()
	mustSubscribe(t, be, topics.EventsFilter(prefix), events)
	b := w.device(t, devB, w.b)

	// A claims the backend's client id with a persistent session and
	// subscribes to the events ...
	oa, _ := w.options(t, backend, w.files(w.a))
	oa.PersistentSession = true
	a := &client{Client: connect(t, oa)}
	spy := newInbox()
	mustSubscribe(t, a, topics.EventsFilter(prefix), spy)
	mustPublish(t, b, b.tree.Events(), "while-a-is-backend", false)
	a.Close()
	// ... then B's client id while B is connected.
	ob, _ := w.options(t, devB, w.files(w.a))
	asB := &client{Client: connect(t, ob)}
	mustPublish(t, b, b.tree.Events(), "while-a-is-b", false)
	asB.Close()

	got := barrier(t, b, b.tree.Events(), events)
	for _, p := range []string{"while-a-is-backend", "while-a-is-b"} {
		if !has(got, p) {
			t.Errorf("backend missed %q; got %v", p, payloads(got))
		}
	}
	for _, c := range []*client{be, b} {
		if strings.Contains(c.log.String(), "connection lost") {
			t.Errorf("a client was disconnected by A using its client id:\n%s", c.log.String())
		}
	}
	if got := spy.all(); len(got) != 0 {
		t.Errorf("A received the backend's events: %v", got)
	}
	log := w.m.Log()
	if !strings.Contains(log, "as "+devA+" (p2, c0, k5, u'"+devA+"')") || strings.Contains(log, "already connected") {
		t.Errorf("broker log: want A's client id replaced by its CN and no takeover:\n%s", log)
	}
}

// TestMosquittoSharedSubscriptionACL: the backend's shared subscription
// $share/<group>/kazashi/+/events works with only "topic read
// kazashi/+/events" in the ACL; a device's shared subscription receives
// nothing it could not read anyway. But the broker grants a device's
// SUBSCRIBE to the backend's group too, and then hands it its round-robin
// share of the events, which the read check drops: those events are lost
// although their publishers got a PUBACK. The group name must therefore be
// a secret of the backend (README.md).
func TestMosquittoSharedSubscriptionACL(t *testing.T) {
	t.Parallel()
	w := startBroker(t)
	const group = "kazashi-test-group"
	be := w.backendClient(t)
	events := newInbox()
	mustSubscribe(t, be, topics.Shared(group, topics.EventsFilter(prefix)), events)
	a := w.device(t, devA, w.a)
	b := w.device(t, devB, w.b)

	// A device in a group of its own: granted, receives nothing of B's,
	// the backend gets everything.
	spy := newInbox()
	mustSubscribe(t, a, topics.Shared("other", topics.EventsFilter(prefix)), spy)
	for i := range 4 {
		mustPublish(t, b, b.tree.Events(), fmt.Sprint("b-", i), false)
	}
	got := barrier(t, b, b.tree.Events(), events)
	if p := payloads(got); len(p) != 4 {
		t.Errorf("backend received %v, want b-0..b-3", p)
	}
	if got := spy.all(); len(got) != 0 {
		t.Errorf("A's shared subscription received %v", got)
	}

	// A device that knows the backend's group joins it.
	joined := newInbox()
	if err := subscribe(t, a, topics.Shared(group, topics.EventsFilter(prefix)), joined); err != nil {
		t.Fatalf("A joining the backend's group: %v; Mosquitto 2.0.11 grants it", err)
	}
	const n = 10
	for i := range n {
		if err := publish(t, b, b.tree.Events(), fmt.Sprint("joined-", i), false); err != nil {
			t.Fatal(err) // every one is acknowledged to B ...
		}
	}
	a.Close() // A leaves the group; the barrier goes to the backend alone
	got = barrier(t, b, b.tree.Events(), events)
	received := 0
	for i := range n {
		if has(got, fmt.Sprint("joined-", i)) {
			received++
		}
	}
	// ... but only the backend's turns of the round robin reach it.
	if received == n || received == 0 {
		t.Errorf("backend received %d of %d events while A was in its group; want some lost (A's turns)", received, n)
	}
	if got := joined.all(); len(got) != 0 {
		t.Errorf("A received events through the backend's group: %v", got)
	}
	t.Logf("with a device in the backend's share group the backend received %d of %d events", received, n)
}
