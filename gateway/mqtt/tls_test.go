package mqtt_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/kazashi/kazashi/gateway/mqtt"
)

// TestTLSBroker is a smoke test of the tls:// dial path against an
// in-process TLS broker (mochi) with a throw-away CA. Mutual TLS against
// Mosquitto comes with the provisioning work.
func TestTLSBroker(t *testing.T) {
	t.Parallel()
	caCert, serverCert := testPKI(t)
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{
		Type: listeners.TypeTCP, ID: "tls", Address: "127.0.0.1:0",
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12},
	})
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	url := "tls://" + l.Address()

	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	o := options(t, url)
	o.TLSConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	c := connect(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	got := make(chan string, 1)
	if err := c.Subscribe(ctx, "kazashi/tls", 1, func(_ string, p []byte) { got <- string(p) }); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := c.Publish(ctx, "kazashi/tls", []byte("over tls"), 1, false); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	select {
	case p := <-got:
		if p != "over tls" {
			t.Errorf("payload = %q", p)
		}
	case <-time.After(waitLong):
		t.Fatal("message not received over TLS")
	}

	// Without the CA the server is not trusted: Connect fails (retrying
	// until ctx ends) and says why.
	bad := options(t, url)
	bctx, bcancel := context.WithTimeout(context.Background(), time.Second)
	defer bcancel()
	c2, err := mqtt.Connect(bctx, bad)
	if err == nil {
		c2.Close()
		t.Fatal("Connect trusted an unknown CA")
	} else if !strings.Contains(err.Error(), "certificate") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("untrusted server: %v", err)
	}
}

type allowAll struct{ mochi.HookBase }

func (*allowAll) ID() string { return "test-allow-all" }
func (*allowAll) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}
func (*allowAll) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }
func (*allowAll) OnACLCheck(*mochi.Client, string, bool) bool              { return true }

// testPKI makes a CA and a server certificate for 127.0.0.1.
func testPKI(t *testing.T) (*x509.Certificate, tls.Certificate) {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kazashi test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return caCert, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
