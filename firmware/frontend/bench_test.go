package frontend

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"

	"github.com/kazashi/kazashi/drivers/jpki"
	"github.com/kazashi/kazashi/drivers/pn532"
	"github.com/kazashi/kazashi/hw/board"
	"github.com/kazashi/kazashi/hw/sim"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

// rfLimit is the RF physical limit for moving n bytes from the card at
// 106 kbit/s: the answer in frames of the largest size ISO/IEC 14443-4
// allows (FSD 256: PCB + 253 bytes + CRC_B), each with SOF, EOF and 10 etu
// per character (sim.RFFrameTypeB), and nothing else: no command frames,
// no turnarounds, no card processing. No reader can do better.
func rfLimit(n int) time.Duration {
	var d time.Duration
	for n > 0 {
		k := min(n, 253)
		d += sim.RFFrameTypeB(1 + k + 2)
		n -= k
	}
	return d
}

// benchCertSize is the certificate size acceptance asks the table for:
// 1.3 KB, taken as 1.3 KiB so that either reading of "KB" is covered.
const benchCertSize = 1331

var (
	bigCertOnce sync.Once
	bigCert     []byte
	bigCertErr  error
)

// Object identifiers of the extensions cert13 adds (RFC 5280 §4.2.1.4,
// §4.2.2.1) and the policy, from the example arc 2.999 (ITU-T X.660
// Annex A): no real policy is claimed.
var (
	oidCertificatePolicies = asn1.ObjectIdentifier{2, 5, 29, 32}
	oidCPS                 = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 2, 1}
	oidTestPolicy          = asn1.ObjectIdentifier{2, 999, 1}
)

// cert13 is the test PKI's valid authentication certificate re-issued by
// the test root at benchCertSize bytes: the same subject, key, validity
// and CRL distribution point, plus what makes a real JPKI certificate
// longer than the test one (an OCSP responder in authorityInfoAccess and
// a certificate policy with a CPS URI, RFC 5280 §4.2.2.1, §4.2.1.4), the
// URI's length chosen to land on the size exactly. It chains to pki.Root.
func cert13(tb testing.TB) []byte {
	tb.Helper()
	testCard(tb) // generates pki
	bigCertOnce.Do(func() { bigCert, bigCertErr = issueSized(benchCertSize) })
	if bigCertErr != nil {
		tb.Fatal(bigCertErr)
	}
	return bigCert
}

func issueSized(size int) ([]byte, error) {
	c := pki.Cards[testpki.KindValid]
	tmpl, err := x509.ParseCertificate(c.Cert)
	if err != nil {
		return nil, err
	}
	root, err := x509.ParseCertificate(pki.Root)
	if err != nil {
		return nil, err
	}
	tmpl.OCSPServer = []string{"http://ocsp.jpki-test.example/auth"}
	base := tmpl.ExtraExtensions
	pad := 0
	for range 8 {
		uri := "http://jpki-test.example/cps/" + strings.Repeat("x", pad)
		policies, err := asn1.Marshal([]policyInformation{{
			Policy:     oidTestPolicy,
			Qualifiers: []policyQualifier{{ID: oidCPS, Qualifier: uri}},
		}})
		if err != nil {
			return nil, err
		}
		tmpl.ExtraExtensions = append(base[:len(base):len(base)], pkix.Extension{Id: oidCertificatePolicies, Value: policies})
		der, err := x509.CreateCertificate(rand.Reader, tmpl, root, tmpl.PublicKey, pki.RootKey)
		if err != nil {
			return nil, err
		}
		if len(der) == size {
			return der, nil
		}
		pad = max(pad+size-len(der), 0)
	}
	return nil, fmt.Errorf("no certificate of exactly %d bytes", size)
}

// policyInformation and policyQualifier are PolicyInformation and
// PolicyQualifierInfo of RFC 5280 §4.2.1.4, the CPS pointer an IA5String.
type policyInformation struct {
	Policy     asn1.ObjectIdentifier
	Qualifiers []policyQualifier
}

type policyQualifier struct {
	ID        asn1.ObjectIdentifier
	Qualifier string `asn1:"ia5"`
}

// TestBenchCertificate: the benchmark's certificate has the size asked
// for, parses, and chains to the test root with the original's key and
// subject, so the table reads a real certificate, not filler.
func TestBenchCertificate(t *testing.T) {
	der := cert13(t)
	if len(der) != benchCertSize {
		t.Fatalf("%d bytes, want %d", len(der), benchCertSize)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(pki.Root)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignatureFrom(root); err != nil {
		t.Fatalf("does not chain to the test root: %v", err)
	}
	orig, _ := x509.ParseCertificate(pki.Cards[testpki.KindValid].Cert)
	if !bytes.Equal(cert.RawSubject, orig.RawSubject) || !bytes.Equal(cert.RawSubjectPublicKeyInfo, orig.RawSubjectPublicKeyInfo) {
		t.Fatal("subject or key differs from the test card's")
	}
	if len(cert.PolicyIdentifiers) != 1 || !cert.PolicyIdentifiers[0].Equal(oidTestPolicy) || len(cert.OCSPServer) != 1 {
		t.Fatalf("policies %v, OCSP %v", cert.PolicyIdentifiers, cert.OCSPServer)
	}
}

// benchLink is one host link of the table.
type benchLink struct {
	name string
	bus  string
	baud int // UART
	hz   int // SPI
}

// BenchmarkReadCertificate reads a 1.3 KB authentication certificate
// (cert13) from a test card through the frontend for every
// ISO-DEP path and host link and reports, per certificate, the modelled
// figures of the simulator's timing model (hw/sim/timing.go): APDUs, RF
// round trips, bytes on the host link, modelled wall time (link + RF +
// card processing) and its ratio to the RF physical limit (rfLimit).
// Wall-clock ns/op is the simulator's speed, not the kiosk's.
func BenchmarkReadCertificate(b *testing.B) {
	links := []benchLink{
		{name: "uart-115200", bus: sim.BusUART, baud: 115200},
		{name: "uart-921600", bus: sim.BusUART, baud: 921600},
		{name: "spi-1MHz", bus: sim.BusSPI, hz: 1_000_000},
		{name: "spi-5MHz", bus: sim.BusSPI, hz: 5_000_000},
	}
	for _, mode := range []ISODEP{ISODEPFirmware, ISODEPSoftware} {
		for _, l := range links {
			b.Run(fmt.Sprintf("%s/%s", mode, l.name), func(b *testing.B) { benchRead(b, mode, l) })
		}
	}
}

func benchRead(b *testing.B, mode ISODEP, l benchLink) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cert := cert13(b)
	c := pki.Cards[testpki.KindValid]
	card, err := sim.NewJPKICard(sim.JPKIConfig{Token: c.Token, AuthCert: cert, AuthCACert: c.CACert})
	if err != nil {
		b.Fatal(err)
	}
	m := &sim.Meter{}
	s, err := sim.Start(ctx, sim.Options{Bus: l.bus, Card: card, Meter: m})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	opts := pn532.DefaultOpts
	opts.ACKTimeout = 300 * time.Millisecond
	cfg := Config{Opts: opts, ISODEP: mode, Baud: l.baud, Poll: 5 * time.Millisecond}
	switch l.bus {
	case sim.BusUART:
		cfg.Open = func(context.Context) (*Link, error) {
			port, err := board.OpenSerial(s.Path(), pn532.DefaultBaud)
			if err != nil {
				return nil, err
			}
			u := pn532.NewUART(port)
			return &Link{Transport: u, Bus: "uart", Close: func() error { u.Close(); return port.Close() }}, nil
		}
	case sim.BusSPI:
		cfg.Open = func(context.Context) (*Link, error) {
			c, err := s.SPI().Connect(physic.Frequency(l.hz)*physic.Hertz, spi.Mode0, 8)
			if err != nil {
				return nil, err
			}
			t, err := pn532.NewSPI(c, nil)
			if err != nil {
				return nil, err
			}
			return &Link{Transport: t, Bus: "spi", Close: func() error { return nil }}, nil
		}
	}
	r := New(cfg)
	defer r.Close()
	var total sim.Metrics
	for b.Loop() {
		sess, err := r.Next(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := jpki.ReadToken(ctx, sess); err != nil {
			b.Fatal(err)
		}
		m.Reset()
		der, err := jpki.ReadCertificate(ctx, sess, jpki.EFAuthCert)
		got := m.Snapshot()
		if err != nil || !bytes.Equal(der, cert) {
			b.Fatalf("certificate: %d bytes, %v", len(der), err)
		}
		total.APDUs += got.APDUs
		total.RFRoundTrips += got.RFRoundTrips
		total.LinkBytes += got.LinkBytes
		total.LinkTime += got.LinkTime
		total.RFTime += got.RFTime
		_ = sess.Close() // RF off: the next Next activates the card again
	}
	n := float64(b.N)
	limit := rfLimit(len(cert))
	b.ReportMetric(float64(len(cert)), "cert_bytes")
	b.ReportMetric(float64(total.APDUs)/n, "apdus")
	b.ReportMetric(float64(total.RFRoundTrips)/n, "rf_round_trips")
	b.ReportMetric(float64(total.LinkBytes)/n, "link_bytes")
	b.ReportMetric(float64(total.Total().Microseconds())/1000/n, "modelled_ms")
	b.ReportMetric(float64(limit.Microseconds())/1000, "rf_limit_ms")
	b.ReportMetric(float64(total.Total())/n/float64(limit), "x_limit")
}
