package frontend

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"

	"github.com/kazashi/kazashi/drivers/jpki"
	"github.com/kazashi/kazashi/drivers/pn532"
	"github.com/kazashi/kazashi/hw/board"
	"github.com/kazashi/kazashi/hw/sim"
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

// benchLink is one host link of the table.
type benchLink struct {
	name string
	bus  string
	baud int // UART
	hz   int // SPI
}

// BenchmarkReadCertificate reads the 1.3 KB-class authentication
// certificate of the test PKI's card through the frontend for every
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
	card, cert := testCard(b)
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
		total.ChipTime += got.ChipTime
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
