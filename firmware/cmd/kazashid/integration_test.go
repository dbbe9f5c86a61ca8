package main

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kazashi/kazashi/firmware/holder"
	"github.com/kazashi/kazashi/firmware/tap"
	"github.com/kazashi/kazashi/gateway/mqtt"
	"github.com/kazashi/kazashi/gateway/mqtt/mqtttest"
	"github.com/kazashi/kazashi/gateway/schema"
	"github.com/kazashi/kazashi/hw/sim"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

// rig is the daemon under test with everything around it real: the
// simulator on a pty (opened by the daemon through tarm/serial), Mosquitto
// started for the test, a backend subscriber.
type rig struct {
	t       *testing.T
	dir     string
	pki     *testpki.PKI
	sim     *sim.Sim
	cards   map[string]*sim.JPKICard
	events  chan tap.Event
	raw     chan []byte
	status  chan []byte
	stdout  *mqtttest.Buffer
	stderr  *mqtttest.Buffer
	proxy   *mqtttest.Proxy
	done    chan error
	cancel  context.CancelFunc
	readies int
	// pad is the PIN pad on the daemon's holder-input socket (nil for
	// card-check); answer decides what it types for each request.
	pad    *holder.Client
	padMu  sync.Mutex
	answer func(holder.Request) padAction
	asked  []holder.Request
	// every MQTT payload seen on the device's topics
	seenMu     sync.Mutex
	seen       []string
	seenTopics []string // the topic of each payload in seen
}

// schemasSeen validates every payload the daemon published so far against
// the JSON Schema of its topic (gateway/schema) and counts them by schema.
func (r *rig) schemasSeen() map[string]int {
	r.t.Helper()
	r.seenMu.Lock()
	defer r.seenMu.Unlock()
	n := map[string]int{}
	for i, p := range r.seen {
		id, ok := schema.ForPrefix("kazashi", r.seenTopics[i])
		if !ok {
			r.t.Errorf("payload on %s: no schema for that topic", r.seenTopics[i])
			continue
		}
		if err := schema.ValidateAs(id, []byte(p)); err != nil {
			r.t.Errorf("payload on %s does not match %s: %v", r.seenTopics[i], id, err)
			continue
		}
		n[id]++
	}
	return n
}

func (r *rig) payloads() []string {
	r.seenMu.Lock()
	defer r.seenMu.Unlock()
	return append([]string(nil), r.seen...)
}

// padAction is what the test's PIN pad does with one request.
type padAction struct {
	value  string // typed (when not cancel or ignore)
	cancel bool   // press "cancel"
	ignore bool   // walk away: let the input time out
}

// rigOptions tune the daemon under test.
type rigOptions struct {
	profile      string // default card-check
	floor        int    // profile.tries_floor, 0 = the daemon's default
	inputTimeout string // holder_input.timeout, default 10s
	extra        string // extra profile JSON members, e.g. `"individual_number_permitted": true`
	poll         string // revocation.poll, default 200ms
	top          string // extra top-level configuration members, e.g. `"shutdown_grace": "1s"`
	mqtt         string // extra members of the mqtt object, e.g. `"tls": {…}`
	bus          string // the simulator's host interface: sim.BusUART (default), BusSPI, BusI2C
}

func newRig(t *testing.T, opts ...rigOptions) *rig {
	t.Helper()
	var o rigOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.profile == "" {
		o.profile = "card-check"
	}
	if o.inputTimeout == "" {
		o.inputTimeout = "10s"
	}
	if o.poll == "" {
		o.poll = "200ms"
	}
	mosq := mqtttest.StartMosquitto(t)
	proxy := mqtttest.StartProxy(t, mosq.URL())
	dir := t.TempDir()
	pki := sharedPKI(t)
	if err := pki.WriteDir(filepath.Join(dir, "pki")); err != nil {
		t.Fatal(err)
	}
	// Fresh virtual cards for every rig: retry counters start full.
	cards := map[string]*sim.JPKICard{}
	for kind, c := range pki.Cards {
		jc, err := sim.FromTestPKI(c)
		if err != nil {
			t.Fatal(err)
		}
		cards[kind] = jc
	}
	ctx, cancel := context.WithCancel(context.Background())
	link := filepath.Join(dir, "pn532")
	simOpts := sim.Options{Link: link, Bus: o.bus}
	if o.bus != "" && o.bus != sim.BusUART {
		simOpts.Link = ""
	}
	s, err := sim.Start(ctx, simOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	useSimBuses(t, s)
	socket := filepath.Join(dir, "run", "holder.sock")
	cfgPath := writeConfig(t, dir, pki, link, proxy.URL(), socket, o)

	r := &rig{t: t, dir: dir, pki: pki, sim: s, cards: cards, proxy: proxy,
		events: make(chan tap.Event, 32), raw: make(chan []byte, 32), status: make(chan []byte, 32),
		stdout: &mqtttest.Buffer{}, stderr: &mqtttest.Buffer{}, done: make(chan error, 1), cancel: cancel}

	sub, err := mqtt.Connect(ctx, mqtt.Options{Broker: mosq.URL(), ClientID: "it-backend"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	err = sub.Subscribe(ctx, "kazashi/it-kiosk/#", 1, func(topic string, payload []byte) {
		r.seenMu.Lock()
		r.seen = append(r.seen, string(payload))
		r.seenTopics = append(r.seenTopics, topic)
		r.seenMu.Unlock()
		switch {
		case strings.HasSuffix(topic, "/events"):
			var e tap.Event
			if err := json.Unmarshal(payload, &e); err != nil {
				t.Errorf("event is not JSON: %v", err)
				return
			}
			r.raw <- payload
			r.events <- e
		case strings.HasSuffix(topic, "/status"):
			r.status <- payload
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- run(ctx, []string{"-config", cfgPath}, r.stdout, r.stderr) }()
	t.Cleanup(func() {
		// Every test on a rig holds every payload to its schema; the
		// offline status of the shutdown below arrives too late for this
		// and is validated in gateway/schema's samples.
		r.schemasSeen()
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("daemon: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("daemon did not stop within 10 s")
		}
		if t.Failed() {
			t.Logf("daemon stdout:\n%s\ndaemon stderr:\n%s", r.stdout, r.stderr)
		}
	})
	r.waitReady()
	if o.profile != "card-check" {
		r.startPad(ctx, socket)
	}
	// The daemon announces itself with a retained online status once its
	// MQTT session is up.
	select {
	case st := <-r.status:
		if !strings.Contains(string(st), `"online":true`) {
			t.Fatalf("first status message %s, want online", st)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("daemon did not publish its online status within 15 s")
	}
	return r
}

// writeConfig writes the daemon's configuration into dir (which holds the
// PKI files under pki/) for the simulator at link and the broker URL, and
// returns its path.
func writeConfig(t *testing.T, dir string, pki *testpki.PKI, link, broker, socket string, o rigOptions) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "key"), []byte(strings.Repeat("5a", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "document.txt"), []byte(testDocument), 0o600); err != nil {
		t.Fatal(err)
	}
	var cv []string
	for _, a := range pki.CVAnchors {
		cv = append(cv, fmt.Sprintf(`{"id": %q, "purpose": %q, "file": %q}`, a.IDString, a.Purpose, filepath.Join("pki", testpki.CVAnchorFile(a))))
	}
	profile := fmt.Sprintf(`{"name": %q, "service": "it-service", "document_file": "document.txt"`, o.profile)
	if o.floor != 0 {
		profile += fmt.Sprintf(`, "tries_floor": %d`, o.floor)
	}
	if o.extra != "" {
		profile += ", " + o.extra
	}
	profile += "}"
	mqttExtra := ""
	if o.mqtt != "" {
		mqttExtra = ", " + o.mqtt
	}
	top := ""
	if o.top != "" {
		top = "\n  " + o.top + ","
	}
	cfg := fmt.Sprintf(`{
  "device_id": "it-kiosk",
  "reader": {"port": %q, "poll_interval": "50ms", "ack_timeout": "1s"%s},
  "profile": %s,
  "holder_input": {"socket": %q, "timeout": %q},
  "trust": {"anchors": [%q], "crls": [%q], "sign_anchors": [%q], "sign_crls": [%q],
            "cv_anchors": [%s], "allow_test": true},
  "mqtt": {"broker": %q%s},
  "state_dir": "state",
  "revocation": {"poll": %q},
  "pseudonym_key_file": "key",%s
  "log_level": "debug"
}`, link, readerJSON(o.bus), profile, socket, o.inputTimeout,
		filepath.Join("pki", testpki.AnchorFile), filepath.Join("pki", testpki.CRLFile),
		filepath.Join("pki", testpki.SignAnchorFile), filepath.Join("pki", testpki.SignCRLFile),
		strings.Join(cv, ", "), broker, mqttExtra, o.poll, top)
	cfgPath := filepath.Join(dir, "kazashid.json")
	if err := os.WriteFile(cfgPath, []byte(cfg+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath

}

// simWithValidCard writes the shared test PKI into dir/pki, starts the
// simulator on a pty linked at dir/pn532 (closed with the test) and
// returns them with a fresh virtual card of the valid kind.
func simWithValidCard(t *testing.T, ctx context.Context, dir string) (*testpki.PKI, *sim.Sim, sim.Target, string) {
	t.Helper()
	pki := sharedPKI(t)
	if err := pki.WriteDir(filepath.Join(dir, "pki")); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "pn532")
	s, err := sim.Start(ctx, sim.Options{Link: link})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	card, err := sim.FromTestPKI(pki.Cards["valid"])
	if err != nil {
		t.Fatal(err)
	}
	return pki, s, card, link
}

// testDocument is what the sign and register profiles have the holder sign.
const testDocument = "申請書 / application form: certificate of residence, 1 copy\n"

var (
	pkiOnce sync.Once
	pkiVal  *testpki.PKI
	pkiErr  error
)

// sharedPKI generates the test PKI once per test binary (RSA key
// generation is the slow part); every rig builds fresh cards from it.
func sharedPKI(t *testing.T) *testpki.PKI {
	t.Helper()
	pkiOnce.Do(func() { pkiVal, pkiErr = testpki.Generate(time.Now()) })
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return pkiVal
}

// startPad connects the test's PIN pad to the daemon's holder-input socket.
func (r *rig) startPad(ctx context.Context, socket string) {
	r.t.Helper()
	pad, err := holder.Dial(ctx, socket)
	if err != nil {
		r.t.Fatalf("PIN pad: %v", err)
	}
	r.pad = pad
	r.t.Cleanup(func() { pad.Close() })
	go func() {
		for {
			req, err := pad.Next(ctx)
			if err != nil {
				return
			}
			r.padMu.Lock()
			r.asked = append(r.asked, req)
			f := r.answer
			r.padMu.Unlock()
			var a padAction
			if f != nil {
				a = f(req)
			} else {
				a.ignore = true
			}
			switch {
			case a.ignore:
			case a.cancel:
				_ = pad.Cancel(ctx)
			default:
				_ = pad.Answer(ctx, []byte(a.value))
			}
		}
	}()
}

// setAnswer scripts the PIN pad and forgets earlier requests.
func (r *rig) setAnswer(f func(holder.Request) padAction) {
	r.padMu.Lock()
	defer r.padMu.Unlock()
	r.answer, r.asked = f, nil
}

// requests returns what the kiosk asked the holder since setAnswer.
func (r *rig) requests() []holder.Request {
	r.padMu.Lock()
	defer r.padMu.Unlock()
	return append([]holder.Request(nil), r.asked...)
}

// waitReady waits for the daemon to show the "place your card" screen once
// more than before: the previous card is gone and the reader polls again.
func (r *rig) waitReady() {
	r.t.Helper()
	r.readies++
	r.waitOutput(r.stdout, "[screen] ready", r.readies)
}

func (r *rig) waitOutput(b *mqtttest.Buffer, s string, n int) {
	r.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for strings.Count(b.String(), s) < n {
		if time.Now().After(deadline) {
			r.t.Fatalf("%q not seen %d times within 15 s", s, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *rig) event(within time.Duration) (tap.Event, []byte) {
	r.t.Helper()
	select {
	case e := <-r.events:
		return e, <-r.raw
	case <-time.After(within):
		r.t.Fatalf("no event within %v", within)
	}
	return tap.Event{}, nil
}

// tap places a card, returns its event, removes the card and waits until
// the daemon polls again.
func (r *rig) tap(kind string, removeAfter int) (tap.Event, []byte) {
	r.t.Helper()
	r.sim.Field().Place(r.cards[kind], removeAfter)
	e, raw := r.event(15 * time.Second)
	r.sim.Remove()
	r.waitReady()
	return e, raw
}

func TestDaemonEndToEnd(t *testing.T) {
	r := newRig(t)

	want := map[string]struct {
		reason  string
		outcome tap.Outcome
	}{
		"valid":      {"ok", tap.Accepted},
		"revoked":    {"revoked", tap.Rejected},
		"expired":    {"expired", tap.Rejected},
		"unknown-ca": {"untrusted", tap.Rejected},
	}
	ids := map[string]string{}
	for _, kind := range []string{testpki.KindValid, testpki.KindRevoked, testpki.KindExpired, testpki.KindUnknownCA} {
		e, raw := r.tap(kind, 0)
		w := want[kind]
		if e.Reason != w.reason || e.Outcome != w.outcome {
			t.Errorf("%s card: outcome %s reason %s, want %s %s", kind, e.Outcome, e.Reason, w.outcome, w.reason)
		}
		// card_id only for a certificate that chained to the anchor: the
		// unknown-CA card copies the root's name but not its signature.
		wantID := 32
		if kind == testpki.KindUnknownCA {
			wantID = 0
		}
		if e.Schema != tap.Schema || e.Device != "it-kiosk" || e.CardKind != "mynumber-card" || e.Tech != "iso14443-4b" || len(e.CardID) != wantID || e.ID == "" {
			t.Errorf("%s card: event %s", kind, raw)
		}
		if time.Since(e.Time) > time.Minute || time.Since(e.Time) < 0 {
			t.Errorf("%s card: event time %v", kind, e.Time)
		}
		ids[kind] = e.CardID
		assertNoCardData(t, r.pki.Cards[kind].Cert, raw, "event")
	}
	if len(map[string]bool{ids["valid"]: true, ids["revoked"]: true, ids["expired"]: true, ids["unknown-ca"]: true}) != 4 || ids["unknown-ca"] != "" {
		t.Errorf("card ids collide: %v", ids)
	}

	// The same card again: same pseudonym, new event id.
	again, _ := r.tap("valid", 0)
	if again.CardID != ids["valid"] || again.Reason != "ok" {
		t.Errorf("second tap of the valid card: %+v (first card id %s)", again, ids["valid"])
	}

	// Pulled away during the certificate read: an error event, reason removed.
	e, _ := r.tap("valid", 5)
	if e.Reason != tap.ReasonRemoved || e.Outcome != tap.Error || e.CardID != "" {
		t.Errorf("card pulled mid-read: %+v", e)
	}
	// And the reader is fine afterwards.
	if e, _ := r.tap("valid", 0); e.Reason != "ok" {
		t.Errorf("tap after a pulled card: %+v", e)
	}

	for kind, c := range r.pki.Cards {
		assertNoCardData(t, c.Cert, []byte(r.stdout.String()+r.stderr.String()), "daemon output ("+kind+")")
	}

	// Every document the daemon published matches its schema, and each
	// kind it publishes on its own was seen: tap events, the online
	// status, health, revocation status and telemetry (sent on connect).
	var seen map[string]int
	deadline := time.Now().Add(15 * time.Second)
	for {
		seen = r.schemasSeen()
		if seen[schema.Tap] >= 7 && seen[schema.Status] >= 1 && seen[schema.Health] >= 1 &&
			seen[schema.RevocationStatus] >= 1 && seen[schema.Telemetry] >= 1 {
			break
		}
		if t.Failed() || time.Now().After(deadline) {
			t.Fatalf("payloads validated by schema: %v, want every kind the daemon publishes", seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("validated against their schemas: %v", seen)
}

// TestDaemonKeepsEventsWhileBrokerUnreachable cuts the network between
// daemon and broker: the tap is still processed at once, its event waits,
// and it arrives exactly once when the route comes back.
func TestDaemonKeepsEventsWhileBrokerUnreachable(t *testing.T) {
	r := newRig(t)
	r.proxy.Blackhole(true)
	r.sim.Field().Place(r.cards["revoked"], 0)
	r.waitOutput(r.stdout, "rejected (revoked)", 1)
	r.waitOutput(r.stderr, "publish failed, will retry", 1)
	select {
	case e := <-r.events:
		t.Fatalf("event delivered through a black hole: %+v", e)
	default:
	}
	r.proxy.Blackhole(false)
	e, _ := r.event(30 * time.Second)
	if e.Reason != "revoked" {
		t.Fatalf("event after recovery: %+v", e)
	}
	r.sim.Remove()
	r.waitReady()
	select {
	case dup := <-r.events:
		if dup.ID == e.ID {
			t.Logf("duplicate delivery of %s (allowed at QoS 1; the backend de-duplicates by event_id)", e.ID)
		} else {
			t.Fatalf("unexpected extra event %+v", dup)
		}
	case <-time.After(300 * time.Millisecond):
	}
}

// assertNoCardData fails if b contains the certificate, its serial number
// (hex or decimal) or its subject.
func assertNoCardData(t *testing.T, certDER, b []byte, what string) {
	t.Helper()
	c, err := x509.ParseCertificate(certDER)
	if err != nil {
		t.Fatal(err)
	}
	low := strings.ToLower(string(b))
	for _, leak := range []string{
		hex.EncodeToString(c.SerialNumber.Bytes()),
		fmt.Sprintf("% x", c.SerialNumber.Bytes()), // as a hex dump in a frame log
		c.SerialNumber.String(),
		strings.ToLower(c.Subject.CommonName),
		hex.EncodeToString(certDER[:24]),
	} {
		if len(leak) >= 8 && strings.Contains(low, leak) {
			t.Errorf("%s leaks card data %q", what, leak)
		}
	}
}
