package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kazashi/kazashi/drivers/pn532"
	"github.com/kazashi/kazashi/hw/board"
	"github.com/kazashi/kazashi/hw/sim"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

// TestProbeRecordsAReplayableSession probes the simulator's chip over a
// pty with --record, then plays the recording back with no chip at all:
// the second probe must find the same firmware and card, byte for byte,
// and use every recorded transaction. This is how a field report becomes
// a test.
func TestProbeRecordsAReplayableSession(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pki, err := testpki.Generate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := pki.Cards[testpki.KindValid]
	card, err := sim.NewJPKICard(sim.JPKIConfig{Token: c.Token, AuthCert: c.Cert, AuthCACert: c.CACert})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.Start(ctx, sim.Options{Card: card})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	open := func(_ context.Context, reader json.RawMessage, record bool) (*ReaderLink, error) {
		var c board.PN532Config
		if err := json.Unmarshal(reader, &c); err != nil {
			return nil, err
		}
		if c.Driver != "pn532-uart" || c.Port != s.Path() {
			t.Errorf("reader config %+v", c)
		}
		port, err := board.OpenUART(c.Port, 0)
		if err != nil {
			return nil, err
		}
		rec := pn532.NewUARTRecorder(port)
		u := pn532.NewUART(rec)
		return &ReaderLink{Transport: u, Bus: "uart " + c.Port, Close: func() error { u.Close(); return port.Close() }, Recording: rec.Recording}, nil
	}
	cfg := []byte(`{"device_id": "k1", "reader": {"driver": "pn532-uart", "port": "` + s.Path() + `", "baud": 921600}}`)
	var file bytes.Buffer
	res, err := Probe(ctx, open, cfg, &file)
	if err != nil {
		t.Fatal(err)
	}
	pupi := card.TypeB().PUPI
	if res.Firmware != "PN532 v1.6 (support 07)" || res.Baud != 115200 || !strings.HasPrefix(res.Target, "type B, PUPI ") ||
		!strings.Contains(res.Target, "FSC 256") {
		t.Fatalf("probe result %+v", res)
	}
	if strings.Contains(strings.ToUpper(res.Target), fmt.Sprintf("%02X", pupi[:])) ||
		strings.Contains(strings.ToUpper(res.Target), fmt.Sprintf("% X", pupi[:])) {
		t.Fatalf("probe shows the whole PUPI: %s", res.Target)
	}
	if st := s.Chip().State(); st.RF || st.Asleep {
		t.Fatalf("chip after probe: %+v (want RF off, awake)", st)
	}

	recd, err := pn532.ReadRecording(bytes.NewReader(file.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	pb := recd.UARTPlayback()
	replay := func(context.Context, json.RawMessage, bool) (*ReaderLink, error) {
		u := pn532.NewUART(pb)
		return &ReaderLink{Transport: u, Bus: res.Bus, Close: func() error { u.Close(); return nil }}, nil
	}
	// The recording was made at 115200 (a recorded port cannot switch),
	// so the replay is configured without the switch.
	again, err := Probe(ctx, replay, []byte(`{"reader": {"driver": "pn532-uart"}}`), nil)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if *again != *res {
		t.Fatalf("replay found %+v, recorded %+v", again, res)
	}
	if err := pb.Done(); err != nil {
		t.Fatalf("replay left transactions unused: %v", err)
	}
}
