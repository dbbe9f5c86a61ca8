package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kazashi/kazashi/gateway/brokertest"
	"github.com/kazashi/kazashi/gateway/mqtt"
	"github.com/kazashi/kazashi/gateway/mqtt/mqtttest"
	"github.com/kazashi/kazashi/provisioning/backend"
)

// TestDaemonMutualTLSShippedBroker: the daemon, configured with its device
// certificate and the pinned broker CA, delivers a tap through Mosquitto
// running the shipped configuration and ACL (deploy/mosquitto) to the
// reference backend, itself authenticated by its own certificate. A
// device certificate whose name is not the configured device_id is refused
// at start: under the shipped ACL every event would be acknowledged and
// dropped.
func TestDaemonMutualTLSShippedBroker(t *testing.T) {
	sh := brokertest.StartShipped(t)
	dev := sh.CA.Client(t, "it-kiosk")
	other := sh.CA.Client(t, "kiosk-other")
	be := sh.CA.Client(t, "kazashi-backend")
	pki := sharedPKI(t)
	tlsConf := func(l brokertest.Leaf) string {
		return fmt.Sprintf(`"tls": {"ca_file": %q, "cert_file": %q, "key_file": %q}`, sh.CA.CertFile, l.CertFile, l.KeyFile)
	}

	t.Run("wrong identity", func(t *testing.T) {
		dir := t.TempDir()
		if err := pki.WriteDir(filepath.Join(dir, "pki")); err != nil {
			t.Fatal(err)
		}
		cfg := writeConfig(t, dir, pki, filepath.Join(dir, "pn532"), sh.URL, filepath.Join(dir, "run", "holder.sock"),
			rigOptions{profile: "card-check", inputTimeout: "10s", poll: "1s", mqtt: tlsConf(other)})
		var stdout, stderr mqtttest.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err := run(ctx, []string{"-config", cfg}, &stdout, &stderr)
		want := `config: mqtt.tls.cert_file is a certificate for "kiosk-other" but device_id is "it-kiosk"`
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("run = %v, want an error starting %q", err, want)
		}
	})

	t.Run("delivered", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		store, err := backend.Open(ctx, filepath.Join(t.TempDir(), "backend.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		tc, err := mqtt.TLSFiles{CAFile: sh.CA.CertFile, CertFile: be.CertFile, KeyFile: be.KeyFile}.Config()
		if err != nil {
			t.Fatal(err)
		}
		listening := make(chan struct{})
		stored := make(chan backend.Row, 4)
		l := &backend.Listener{MQTT: mqtt.Options{Broker: sh.URL, TLSConfig: tc, ClientID: "kazashi-backend"}, Store: store,
			OnListening: func() { close(listening) }, OnStored: func(r backend.Row) { stored <- r }}
		lctx, stopL := context.WithCancel(ctx)
		ldone := make(chan error, 1)
		go func() { ldone <- l.Run(lctx) }()
		defer func() { stopL(); <-ldone }()
		select {
		case <-listening:
		case <-time.After(15 * time.Second):
			t.Fatal("backend not subscribed over mutual TLS within 15 s")
		}

		dir := t.TempDir()
		_, s, card, link := simWithValidCard(t, ctx, dir)
		cfg := writeConfig(t, dir, pki, link, sh.URL, filepath.Join(dir, "run", "holder.sock"),
			rigOptions{profile: "card-check", inputTimeout: "10s", poll: "1s", mqtt: tlsConf(dev)})
		var stdout, stderr mqtttest.Buffer
		dctx, stopD := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- run(dctx, []string{"-config", cfg}, &stdout, &stderr) }()
		defer func() {
			stopD()
			if err := <-done; err != nil {
				t.Errorf("daemon: %v", err)
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", &stdout, &stderr)
			}
		}()
		s.Field().Place(card, 0)
		select {
		case r := <-stored:
			if r.DeviceID != "it-kiosk" || r.Outcome != "accepted" || r.Reason != "ok" || r.Topic != "kazashi/it-kiosk/events" {
				t.Fatalf("stored %+v", r)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no event at the backend within 20 s")
		}
		if strings.Contains(stderr.String(), "quarantine") {
			t.Fatalf("daemon quarantined something:\n%s", &stderr)
		}
	})
}
