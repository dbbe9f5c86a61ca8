package ctl

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kazashi/kazashi/firmware/tap"
	"github.com/kazashi/kazashi/gateway/mqtt"
	"github.com/kazashi/kazashi/gateway/mqtt/mqtttest"
	"github.com/kazashi/kazashi/provisioning/backend"
)

// waitLong bounds every wait for a broker-side effect; on loopback they
// take milliseconds, so reaching it means a bug.
const waitLong = 20 * time.Second

// secretCardID is in every published payload; no output may show it.
const secretCardID = "card-pseudonym-4f1c9e27d8"

const header = "TIME                  DEVICE            PROFILE         OUTCOME   REASON                  EVENT\n"

var kioskSeq atomic.Int64

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitLong)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// listenRun is one `kazashictl listen` run on its own goroutine.
type listenRun struct {
	stdout, stderr *mqtttest.Buffer
	stats          func() backend.Stats
	cancel         context.CancelFunc
	done           chan int
}

// startListen runs Main with "listen" and args and waits until it has
// subscribed.
func startListen(t *testing.T, args ...string) *listenRun {
	t.Helper()
	r := &listenRun{stdout: new(mqtttest.Buffer), stderr: new(mqtttest.Buffer), done: make(chan int, 1)}
	statsc := make(chan func() backend.Stats, 1)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	io := IO{Stdout: r.stdout, Stderr: r.stderr, listening: func(s func() backend.Stats) { statsc <- s }}
	go func() { r.done <- Main(ctx, append([]string{"listen"}, args...), io) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
		r.done <- -1
		if t.Failed() {
			t.Logf("listen stdout:\n%s\nlisten stderr:\n%s", r.stdout, r.stderr)
		}
	})
	select {
	case r.stats = <-statsc:
	case code := <-r.done:
		r.done <- code
		t.Fatalf("listen exited %d before subscribing:\n%s", code, r.stderr)
	case <-time.After(waitLong):
		t.Fatalf("listen not subscribed:\n%s", r.stderr)
	}
	return r
}

// stop cancels the run (SIGINT in kazashictl) and returns its exit status.
func (r *listenRun) stop(t *testing.T) int {
	t.Helper()
	r.cancel()
	select {
	case code := <-r.done:
		r.done <- code
		return code
	case <-time.After(waitLong):
		t.Fatal("listen did not return after cancel")
		return 0
	}
}

// kiosk publishes as one device, QoS 1: when publish returns, the broker
// has the message.
type kiosk struct {
	c      *mqtt.Client
	device string
}

func newKiosk(t *testing.T, broker, device string) *kiosk {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.Options{Broker: broker, ClientID: fmt.Sprintf("%s-%d", device, kioskSeq.Add(1)),
		Logger: mqtttest.Logger(t)})
	if err != nil {
		t.Fatalf("kiosk connect: %v", err)
	}
	t.Cleanup(c.Close)
	return &kiosk{c: c, device: device}
}

func (k *kiosk) publish(t *testing.T, payload []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := k.c.Publish(ctx, "kazashi/"+k.device+"/events", payload, 1, false); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// event is a firmware/tap event as a kiosk publishes it.
func event(t *testing.T, device, id string, at time.Time, profile, reason string) []byte {
	t.Helper()
	b, err := json.Marshal(tap.Event{Schema: tap.Schema, ID: id, Device: device, Time: at, Profile: profile,
		Outcome: tap.OutcomeOf(reason), Reason: reason, CardID: secretCardID, TimeSource: "system", ReadMS: 412})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// row is the expected table line of one event.
func row(at time.Time, device, profile, outcome, reason, id string) string {
	return fmt.Sprintf("%-20s  %-16s  %-14s  %-8s  %-22s  %s\n", at.UTC().Format(time.RFC3339), device, profile, outcome, reason, id)
}

// subscribes counts the SUBSCRIBE packets the broker logged from clientID
// (the configuration logs everything).
func subscribes(m *mqtttest.Mosquitto, clientID string) int {
	return strings.Count(m.Log(), "Received SUBSCRIBE from "+clientID+"\n")
}

func verboseConf(port int, dir string) string {
	return mqtttest.AnonymousConf(port, dir) + "log_type all\n"
}

type tapCase struct {
	device, id      string
	at              time.Time
	profile, reason string
}

func TestListenThenEvents(t *testing.T) {
	t.Parallel()
	m := mqtttest.StartMosquittoConf(t, verboseConf)
	db := filepath.Join(t.TempDir(), "events.db")
	const clientID = "backend-ctl-test"
	r := startListen(t, "--broker", m.URL(), "--db", db, "--client-id", clientID)
	// (The resync below also makes the mqtt client log one "connection
	// lost" warning, before or after this line.)
	if want := "kazashictl listen: subscribed to $share/kazashi-backend/kazashi/+/events as " + clientID + ", storing in " + db + "\n"; !strings.Contains("\n"+r.stderr.String(), "\n"+want) {
		t.Errorf("stderr %q lacks the line %q", r.stderr, want)
	}
	// Listener.Run makes the broker drop and re-send its first
	// connection's session (its resync); publish once the re-established
	// connection has subscribed again, so that nothing waits for a later
	// reconnect.
	waitFor(t, "re-subscription after the session resync", func() bool { return subscribes(m, clientID) >= 2 })

	now := time.Now().UTC().Truncate(time.Second)
	k1, k2 := newKiosk(t, m.URL(), "kiosk-01"), newKiosk(t, m.URL(), "kiosk-02")
	e1 := tapCase{"kiosk-01", "0b7e7f0c-2f7e-4c55-9d1a-3c6f9f0b5a11", now.Add(-30 * time.Minute), "jpki-auth", "ok"}
	e2 := tapCase{"kiosk-02", "1c8f8a1d-3a8f-4d66-8e2b-4d7a0a1c6b22", now.Add(-10 * time.Minute), "jpki-auth", "revoked"}
	e3 := tapCase{"kiosk-01", "2d9a9b2e-4b9a-4e77-9f3c-5e8b1b2d7c33", now.Add(-2 * time.Hour), "", "expired"}
	e4 := tapCase{"kiosk-01", "3eab0c3f-5cab-4f88-a04d-6f9c2c3e8d44", now.Add(-5 * time.Minute), "face-check", "io"}
	pub := func(k *kiosk, e tapCase) { k.publish(t, event(t, e.device, e.id, e.at, e.profile, e.reason)) }
	// One message at a time, each handled before the next: the table's
	// order is then the publishing order.
	handled := func(n uint64) {
		t.Helper()
		waitFor(t, fmt.Sprintf("message %d handled", n), func() bool { return r.stats().Received == n })
	}
	pub(k1, e1)
	handled(1)
	pub(k1, e1) // the kiosk re-sends after a lost PUBACK
	handled(2)
	// kiosk-01 claiming to be kiosk-02: rejected, not stored.
	k1.publish(t, event(t, "kiosk-02", "4fbc1d40-6dbc-4099-b14e-7a0d3d4f9e55", now, "jpki-auth", "ok"))
	handled(3)
	pub(k2, e2)
	handled(4)
	pub(k1, e3)
	handled(5)
	pub(k1, e4)
	handled(6)

	if code := r.stop(t); code != ExitOK {
		t.Fatalf("listen exit %d, stderr:\n%s", code, r.stderr)
	}
	wantOut := header +
		row(e1.at, "kiosk-01", "jpki-auth", "accepted", "ok", "0b7e7f0c") +
		row(e2.at, "kiosk-02", "jpki-auth", "rejected", "revoked", "1c8f8a1d") +
		row(e3.at, "kiosk-01", "-", "rejected", "expired", "2d9a9b2e") +
		row(e4.at, "kiosk-01", "face-check", "error", "io", "3eab0c3f") +
		"received 6, new 4, duplicates 1, rejected 1 (device-mismatch 1), storage errors 0\n"
	if got := r.stdout.String(); got != wantOut {
		t.Errorf("listen stdout:\n%s\nwant:\n%s", got, wantOut)
	}
	if n := strings.Count(r.stderr.String(), "reason=device-mismatch"); n != 1 {
		t.Errorf("stderr reports the rejection %d times, want once:\n%s", n, r.stderr)
	}
	for _, out := range []string{r.stdout.String(), r.stderr.String()} {
		if strings.Contains(out, secretCardID) || strings.Contains(out, e1.id) || strings.Contains(out, `"schema"`) {
			t.Errorf("listen output shows a payload, a card id or a full event id:\n%s", out)
		}
	}

	events := func(args ...string) (string, string) {
		t.Helper()
		code, out, errs := runMain(t, append([]string{"events", "--db", db}, args...)...)
		if code != ExitOK {
			t.Fatalf("events %v: exit %d: %s", args, code, errs)
		}
		return out, errs
	}
	// The last hour's rejections: e2 only (e3 is two hours old).
	if out, _ := events("--since", "1h", "--outcome", "rejected"); out != header+row(e2.at, "kiosk-02", "jpki-auth", "rejected", "revoked", "1c8f8a1d") {
		t.Errorf("events --since 1h --outcome rejected:\n%s", out)
	}
	// The last hour, newest first.
	want := header + row(e4.at, "kiosk-01", "face-check", "error", "io", "3eab0c3f") +
		row(e2.at, "kiosk-02", "jpki-auth", "rejected", "revoked", "1c8f8a1d") +
		row(e1.at, "kiosk-01", "jpki-auth", "accepted", "ok", "0b7e7f0c")
	if out, _ := events("--since", "1h"); out != want {
		t.Errorf("events --since 1h:\n%s\nwant:\n%s", out, want)
	}
	// An RFC 3339 bound, one device.
	if out, _ := events("--since", now.Add(-3*time.Hour).Format(time.RFC3339), "--device", "kiosk-01", "--outcome", "rejected"); out != header+row(e3.at, "kiosk-01", "-", "rejected", "expired", "2d9a9b2e") {
		t.Errorf("events --device kiosk-01 --outcome rejected:\n%s", out)
	}
	if out, _ := events("--reason", "revoked", "--device", "kiosk-01"); out != header {
		t.Errorf("events matching nothing:\n%s", out)
	}
	out, errs := events("--limit", "2")
	if want := header + row(e4.at, "kiosk-01", "face-check", "error", "io", "3eab0c3f") + row(e2.at, "kiosk-02", "jpki-auth", "rejected", "revoked", "1c8f8a1d"); out != want {
		t.Errorf("events --limit 2:\n%s\nwant:\n%s", out, want)
	}
	if errs != "kazashictl events: the newest 2 of 4 matching events (--limit)\n" {
		t.Errorf("events --limit 2 stderr %q", errs)
	}
	out, _ = events("--json", "--outcome", "error")
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("events --json: %v\n%s", err, out)
	}
	wantJSON := map[string]any{"event_id": e4.id, "device_id": "kiosk-01", "time": e4.at.Format(time.RFC3339),
		"outcome": "error", "reason": "io", "profile": "face-check", "schema": tap.Schema, "topic": "kazashi/kiosk-01/events"}
	for k, v := range wantJSON {
		if got[k] != v {
			t.Errorf("events --json %s = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got["received_at"]; !ok || len(got) != len(wantJSON)+1 {
		t.Errorf("events --json has keys %v, want exactly %v and received_at", got, wantJSON)
	}
	if strings.Contains(out, secretCardID) {
		t.Errorf("events --json shows the card id: %s", out)
	}
}

// listen asks for a persistent session under its client id, and a second
// run on the same database with the same id resumes that session and
// de-duplicates against what the first run stored.
//
// Events queued while no listener runs are not published here: the
// broker sends them (and any it sent but got no PUBACK for) right after
// CONNACK, before the re-subscription has registered paho's handler, and
// Listener's resync loses the same race now and then: the messages then
// wait for the next reconnect (backend's TestQueuedWhileOfflineSurvive-
// BrokerRestart shows it too; see the TODO on backend.Listener.resync).
func TestListenRestartResumesSession(t *testing.T) {
	t.Parallel()
	m := mqtttest.StartMosquittoConf(t, verboseConf)
	db := filepath.Join(t.TempDir(), "events.db")
	const clientID = "backend-ctl-restart"
	args := []string{"--broker", m.URL(), "--db", db, "--client-id", clientID}
	now := time.Now().UTC().Truncate(time.Second)
	first := event(t, "kiosk-01", "5a0d2e51-7ecd-41aa-8c5f-8b1e4e5a0f66", now.Add(-time.Minute), "jpki-auth", "ok")
	k := newKiosk(t, m.URL(), "kiosk-01")

	// Each message is acknowledged before the next step: one still being
	// handled when listen stops is stored but not acknowledged, and the
	// broker would send it again after the next CONNACK (see above).
	acked := func(n int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("PUBACK %d from the listener", n), func() bool {
			return strings.Count(m.Log(), "Received PUBACK from "+clientID+" ") == n
		})
	}
	r := startListen(t, args...)
	waitFor(t, "re-subscription after the session resync", func() bool { return subscribes(m, clientID) >= 2 })
	k.publish(t, first)
	acked(1)
	if code := r.stop(t); code != ExitOK {
		t.Fatalf("listen exit %d", code)
	}

	r = startListen(t, args...)
	waitFor(t, "re-subscription after the session resync", func() bool { return subscribes(m, clientID) >= 4 })
	k.publish(t, first) // the kiosk re-sends: already stored by the first run
	acked(2)
	k.publish(t, event(t, "kiosk-01", "6b1e3f62-8fde-42bb-9d60-9c2f5f6b1a77", now, "jpki-sign", "wrong-secret"))
	acked(3)
	if code := r.stop(t); code != ExitOK {
		t.Fatalf("listen exit %d", code)
	}
	want := header + row(now, "kiosk-01", "jpki-sign", "rejected", "wrong-secret", "6b1e3f62") +
		"received 2, new 1, duplicates 1, rejected 0, storage errors 0\n"
	if got := r.stdout.String(); got != want {
		t.Errorf("second run:\n%s\nwant:\n%s", got, want)
	}
	code, out, _ := runMain(t, "events", "--db", db, "--limit", "0")
	if want := header + row(now, "kiosk-01", "jpki-sign", "rejected", "wrong-secret", "6b1e3f62") +
		row(now.Add(-time.Minute), "kiosk-01", "jpki-auth", "accepted", "ok", "5a0d2e51"); code != ExitOK || out != want {
		t.Errorf("events: exit %d\n%s\nwant:\n%s", code, out, want)
	}

	// Every connection asked for a persistent session (c0); the broker
	// had none for the first, and resumed it for every later one.
	log := m.Log()
	connects := strings.Count(log, "as "+clientID+" (p2, c0, ")
	if connects < 4 || strings.Count(log, "as "+clientID+" (p2, c1, ") != 0 {
		t.Errorf("%d persistent-session connections of %s, want at least 4 and no clean one", connects, clientID)
	}
	if n := strings.Count(log, "Sending CONNACK to "+clientID+" (0, 0)"); n != 1 {
		t.Errorf("%d CONNACKs without a session present, want only the very first", n)
	}
	if n := strings.Count(log, "Sending CONNACK to "+clientID+" (1, 0)"); n != connects-1 {
		t.Errorf("%d CONNACKs resuming the session, want %d", n, connects-1)
	}
}

// pkiFiles is a broker CA, a server certificate for 127.0.0.1 and a
// client certificate, as PEM files in dir.
type pkiFiles struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func writeTLSFiles(t *testing.T, dir string) pkiFiles {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	writeKey := func(name string, k *ecdsa.PrivateKey) string {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name, "PRIVATE KEY", der)
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test broker CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, k *ecdsa.PrivateKey) []byte {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	sk, ck := newKey(), newKey()
	return pkiFiles{
		ca:         write("ca.pem", "CERTIFICATE", caDER),
		serverCert: write("server.pem", "CERTIFICATE", leaf(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, sk)),
		serverKey:  writeKey("server.key", sk),
		clientCert: write("client.pem", "CERTIFICATE", leaf(3, "backend-1", x509.ExtKeyUsageClientAuth, ck)),
		clientKey:  writeKey("client.key", ck),
	}
}

// listen connects with mutual TLS to a broker that requires a client
// certificate; without one the broker refuses the connection.
func TestListenMutualTLS(t *testing.T) {
	t.Parallel()
	f := writeTLSFiles(t, t.TempDir())
	m := mqtttest.StartMosquittoConf(t, func(port int, dir string) string {
		// "user root": started as root, mosquitto would otherwise switch
		// to the user mosquitto, who cannot read the test's files.
		return fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nuser root\n"+
			"cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n", port, f.ca, f.serverCert, f.serverKey)
	})
	broker := "ssl://" + m.Addr()
	db := filepath.Join(t.TempDir(), "events.db")
	r := startListen(t, "--broker", broker, "--db", db, "--client-id", "backend-tls", "--group", "",
		"--tls-ca", f.ca, "--tls-cert", f.clientCert, "--tls-key", f.clientKey)
	if !strings.Contains(r.stderr.String(), "subscribed to kazashi/+/events as backend-tls") {
		t.Errorf("plain subscription not reported:\n%s", r.stderr)
	}
	if code := r.stop(t); code != ExitOK {
		t.Fatalf("listen exit %d:\n%s", code, r.stderr)
	}
	if want := header + "received 0, new 0, duplicates 0, rejected 0, storage errors 0\n"; r.stdout.String() != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}

	// Without the client certificate the handshake fails; listen keeps
	// retrying until it is stopped, then exits cleanly having received
	// nothing.
	out, errb := new(mqtttest.Buffer), new(mqtttest.Buffer)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"listen", "--broker", broker, "--db", db, "--client-id", "backend-nocert", "--tls-ca", f.ca},
			IO{Stdout: out, Stderr: errb})
	}()
	waitFor(t, "the broker refusing a client without certificate", func() bool {
		return strings.Contains(m.Log(), "peer did not return a certificate")
	})
	cancel()
	if code := <-done; code != ExitOK || errb.String() != "kazashictl listen: connecting to "+broker+" as backend-nocert\n" ||
		out.String() != header+"received 0, new 0, duplicates 0, rejected 0, storage errors 0\n" {
		t.Errorf("without a client certificate: exit %d, stdout %q, stderr %q", code, out, errb)
	}
}

func TestListenEventsFlagErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "events.db")
	f := writeTLSFiles(t, dir)
	openKey := filepath.Join(dir, "open.key")
	if err := os.WriteFile(openKey, mustRead(t, f.clientKey), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(openKey, 0o644); err != nil { // past the umask
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.db")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"events"}, "kazashictl events: --db is required\n"},
		{[]string{"events", "--db", db, "--outcome", "denied"}, `kazashictl events: --outcome "denied": want one of accepted, rejected, error` + "\n"},
		{[]string{"events", "--db", db, "--since", "1x"}, `kazashictl events: --since "1x": neither a duration (1h, 30m) nor an RFC 3339 time` + "\n"},
		{[]string{"events", "--db", db, "--since", "-1h"}, "kazashictl events: --since -1h: the duration must be positive\n"},
		{[]string{"events", "--db", db, "--limit", "-1"}, "kazashictl events: --limit must not be negative\n"},
		{[]string{"events", "--db", missing}, "kazashictl events: --db: stat " + missing + ": no such file or directory\n"},
		{[]string{"events", "--db", db, "extra"}, `kazashictl events: unexpected argument "extra"` + "\n"},
		{[]string{"listen", "--db", db}, "kazashictl listen: --broker is required\n"},
		{[]string{"listen", "--broker", "tcp://127.0.0.1:1"}, "kazashictl listen: --db is required\n"},
		{[]string{"listen", "--broker", "tcp://127.0.0.1:1", "--db", db, "--client-id", ""}, "kazashictl listen: --client-id must not be empty: the broker keeps the session under it\n"},
		{[]string{"listen", "--broker", "http://127.0.0.1:1", "--db", db}, `kazashictl listen: --broker http://127.0.0.1:1: scheme "http", want tcp://host:port or ssl://host:port` + "\n"},
		{[]string{"listen", "--broker", "tcp://127.0.0.1:1", "--db", db, "--group", "a/b"}, `kazashictl listen: --group "a/b": a share name has no '/', '+', '#' or NUL` + "\n"},
		{[]string{"listen", "--broker", "tcp://127.0.0.1:1", "--db", db, "--prefix", "kazashi/#"}, "kazashictl listen: --prefix: topics: prefix \"kazashi/#\": no wildcards, NUL or leading $\n"},
		{[]string{"listen", "--broker", "tcp://127.0.0.1:1", "--db", db, "--tls-ca", f.ca}, "kazashictl listen: --tls-* options need an ssl:// or mqtts:// broker, not tcp://\n"},
		{[]string{"listen", "--broker", "ssl://127.0.0.1:1", "--db", db}, "kazashictl listen: --tls-ca is required for a TLS broker: the broker's CA is pinned, system roots are not used\n"},
		{[]string{"listen", "--broker", "ssl://127.0.0.1:1", "--db", db, "--tls-ca", f.ca, "--tls-cert", f.clientCert}, "kazashictl listen: --tls-cert and --tls-key go together\n"},
		{[]string{"listen", "--broker", "ssl://127.0.0.1:1", "--db", db, "--tls-ca", f.ca, "--tls-cert", f.clientCert, "--tls-key", openKey},
			"kazashictl listen: mqtt: TLS files: key file " + openKey + ": mode 0644 lets group or other users access the private key; chmod 0600 it\n"},
		{[]string{"listen", "--broker", "ssl://127.0.0.1:1", "--db", db, "--tls-ca", f.clientKey}, "kazashictl listen: mqtt: TLS files: CA file " + f.clientKey + `: PEM block 1 is a "PRIVATE KEY", want only CERTIFICATE blocks` + "\n"},
	}
	for _, c := range cases {
		code, out, errs := runMain(t, c.args...)
		// Usage errors print the usage before the message.
		if code != ExitError || !strings.HasSuffix(errs, c.want) || out != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d and stderr ending %q", c.args, code, out, errs, ExitError, c.want)
		}
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("events created %s: %v", missing, err)
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("a refused listen created the database: %v", err)
	}
	// An unknown flag: the flag package's message, then the usage, which
	// lists both commands.
	code, _, errs := runMain(t, "events", "--db", db, "--bogus")
	if code != ExitError || !strings.HasPrefix(errs, "flag provided but not defined: -bogus\nusage:\n") ||
		!strings.Contains(errs, "\n  kazashictl listen --broker URL --db FILE") || !strings.Contains(errs, "\n  kazashictl events --db FILE") {
		t.Errorf("unknown flag: exit %d, %q", code, errs)
	}
}
