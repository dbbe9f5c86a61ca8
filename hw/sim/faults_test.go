package sim

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/kazashi/kazashi/drivers/pn532"
)

// oldListAnswer is an InListPassiveTarget answer left from a previous
// session.
var oldListAnswer = rsp(atqbAnswer)

// TestFaultDropHostBytes: a command that loses bytes on the way gets no
// ACK; the host's retry after its ACK timeout gets through.
func TestFaultDropHostBytes(t *testing.T) {
	noLeak(t)
	c, _ := newTestChip(t, nil)
	f := &Faults{}
	hs := serveHSU(t, c, &HSUOptions{Faults: f})
	f.DropHostBytes(3)
	hs.write(cmd("02"))
	hs.expectSilence(100 * time.Millisecond)
	if in, _, _, _ := f.Pending(); in != 0 {
		t.Fatalf("%d host bytes still to drop", in)
	}
	hs.exchange("02", "03 32 01 06 07")
}

// TestFaultDropChipBytes: the host gets a broken ACK and the answer; it
// recovers the documented way: ACK (abort), drain, ask again.
func TestFaultDropChipBytes(t *testing.T) {
	noLeak(t)
	c, _ := newTestChip(t, nil)
	f := &Faults{}
	hs := serveHSU(t, c, &HSUOptions{Faults: f})
	f.DropChipBytes(2)
	hs.write(cmd("02"))
	hs.expectBytes(pn532.ACK[2:])
	hs.expectBytes(rsp("03 32 01 06 07"))
	hs.write(pn532.ACK)
	if got := hs.drain(50 * time.Millisecond); len(got) != 0 {
		t.Fatalf("after ACK: % X", got)
	}
	hs.exchange("02", "03 32 01 06 07")
}

// TestFaultCorruptChipByte: a flipped bit in the answer breaks its DCS;
// the host's NACK gets it again, intact.
func TestFaultCorruptChipByte(t *testing.T) {
	noLeak(t)
	c, _ := newTestChip(t, nil)
	f := &Faults{}
	hs := serveHSU(t, c, &HSUOptions{Faults: f})
	want := rsp("03 32 01 06 07")
	f.CorruptChipByte(len(pn532.ACK)+7, 0x10) // the answer's 32
	hs.write(cmd("02"))
	hs.expectBytes(pn532.ACK)
	bad := bytes.Clone(want)
	bad[7] ^= 0x10
	hs.expectBytes(bad)
	if _, _, err := pn532.Decode(bad); !errors.Is(err, pn532.ErrChecksum) {
		t.Fatalf("corrupted frame decodes: %v", err)
	}
	hs.write(pn532.NACK)
	hs.expectBytes(want)
}

// TestFaultStaleFrameHSU: a previous session's answer comes first; a host
// that starts with ACK, drains and asks GetFirmwareVersion is fine, and
// NACK does not bring the stale frame back.
func TestFaultStaleFrameHSU(t *testing.T) {
	noLeak(t)
	c, _ := newTestChip(t, nil)
	f := newFaults(FaultOptions{StaleFrames: [][]byte{oldListAnswer}})
	hs := serveHSU(t, c, &HSUOptions{Faults: f})
	hs.expectBytes(oldListAnswer)
	hs.write(pn532.ACK)
	hs.drain(30 * time.Millisecond)
	hs.exchange("02", "03 32 01 06 07")
	hs.write(pn532.NACK)
	hs.expectBytes(rsp("03 32 01 06 07"))
	// And one injected later.
	f.InjectStale(oldListAnswer)
	hs.expectBytes(oldListAnswer)
}

// TestFaultStaleFramePTY: the stale frame waits in the pty for whoever
// opens it.
func TestFaultStaleFramePTY(t *testing.T) {
	noLeak(t)
	s := startSim(t, Options{Faults: FaultOptions{StaleFrames: [][]byte{oldListAnswer}}})
	time.Sleep(20 * time.Millisecond)
	p := openSerial(t, s.Path())
	defer p.Close()
	if got := readN(t, p, len(oldListAnswer)); !bytes.Equal(got, oldListAnswer) {
		t.Fatalf("stale frame: % X", got)
	}
}

// TestFaultStaleFrameSPI: on SPI the stale frame is ready at the first
// status read; the host reads it, then talks.
func TestFaultStaleFrameSPI(t *testing.T) {
	noLeak(t)
	s, hs, _ := startSPI(t, Options{Awake: true, Faults: FaultOptions{StaleFrames: [][]byte{oldListAnswer}}})
	if st := hs.status(); st != 0x01 {
		t.Fatalf("status %02X, want the stale frame ready", st)
	}
	if got := hs.read(len(oldListAnswer)); !bytes.Equal(got, oldListAnswer) {
		t.Fatalf("stale frame: % X", got)
	}
	hs.exchange(s, "02", "03 32 01 06 07")
}

// TestFaultStaleFrameI2C: the same on I2C.
func TestFaultStaleFrameI2C(t *testing.T) {
	noLeak(t)
	_, hs := startI2C(t, Options{Awake: true, Faults: FaultOptions{StaleFrames: [][]byte{oldListAnswer}}})
	if got := hs.frame(len(oldListAnswer)); !bytes.Equal(got, oldListAnswer) {
		t.Fatalf("stale frame: % X", got)
	}
	hs.exchange("02", "03 32 01 06 07")
}

// TestFaultHungSPI: a hung chip takes no frame and never reports ready;
// a pulse on RSTPD_N brings it back in LowVbat (NSS wakes it).
func TestFaultHungSPI(t *testing.T) {
	noLeak(t)
	s, hs, clk := startSPI(t, Options{Awake: true, Faults: FaultOptions{Hung: true}})
	for range 3 {
		hs.write(cmd("02"))
		time.Sleep(10 * time.Millisecond)
		if st := hs.status(); st != 0x00 {
			t.Fatalf("hung chip status %02X", st)
		}
	}
	rst := s.ResetPin()
	if err := rst.Out(gpio.Low); err != nil {
		t.Fatal(err)
	}
	if got := hs.tx([]byte{0x02}, 2); !bytes.Equal(got, h("FF FF")) {
		t.Fatalf("held in reset: % X", got)
	}
	if err := rst.Out(gpio.High); err != nil {
		t.Fatal(err)
	}
	if s.Chip().Hung() || !s.Chip().Asleep() {
		t.Fatalf("after reset: %+v hung %v", s.Chip().State(), s.Chip().Hung())
	}
	hs.tx([]byte{0x02}, 2) // NSS wakes it
	clk.Advance(SPIWakeDelay)
	hs.exchange(s, "14 01", "15")
	hs.exchange(s, "02", "03 32 01 06 07")
}

// TestFaultHungI2C: a hung chip stretches SCL; the reset pulse recovers.
func TestFaultHungI2C(t *testing.T) {
	noLeak(t)
	s, hs := startI2C(t, Options{Awake: true})
	hs.exchange("02", "03 32 01 06 07")
	s.Chip().Hang()
	if _, err := hs.tx(cmd("02"), 0); !errors.Is(err, ErrI2CTimeout) {
		t.Fatalf("hung: %v", err)
	}
	if err := s.ResetPin().Out(gpio.Low); err != nil {
		t.Fatal(err)
	}
	if _, err := hs.tx(nil, 1); !errors.Is(err, ErrI2CNACK) {
		t.Fatalf("held in reset: %v", err)
	}
	if err := s.ResetPin().Out(gpio.High); err != nil {
		t.Fatal(err)
	}
	hs.exchange("14 01", "15")
}

// TestFaultHungPTY: over the pty a hung chip stays silent; the reset pulse
// and the HSU wake-up bring it back.
func TestFaultHungPTY(t *testing.T) {
	noLeak(t)
	s := startSim(t, Options{Card: newTestCard(t)})
	p := openSerial(t, s.Path())
	defer p.Close()
	if _, err := p.Write(hsuWakeUp); err != nil {
		t.Fatal(err)
	}
	serialExchange(t, p, "14 01", "15")
	s.Chip().Hang()
	if _, err := p.Write(cmd("02")); err != nil {
		t.Fatal(err)
	}
	if got := readFor(p, 150*time.Millisecond); len(got) != 0 {
		t.Fatalf("hung chip sent % X", got)
	}
	if err := s.ResetPin().Pulse(time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(hsuWakeUp); err != nil {
		t.Fatal(err)
	}
	serialExchange(t, p, "14 01", "15")
	serialExchange(t, p, "4A 01 03 00", atqbAnswer)
}

// TestFaultUnplugReplug: the adapter is pulled out: the link symlink goes
// away and the host's port fails; plugged back, the link points to a new
// pty, and a host that reopens it and wakes the chip gets answers.
func TestFaultUnplugReplug(t *testing.T) {
	noLeak(t)
	link := filepath.Join(t.TempDir(), "pn532")
	s := startSim(t, Options{Link: link, Card: newTestCard(t)})
	old := s.Path()
	p := openSerial(t, link)
	if _, err := p.Write(hsuWakeUp); err != nil {
		t.Fatal(err)
	}
	serialExchange(t, p, "14 01", "15")

	s.Unplug()
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("link still there: %v", err)
	}
	_, werr := p.Write(cmd("02"))
	_, rerr := p.Read(make([]byte, 16))
	if werr == nil && rerr == nil {
		t.Fatal("the host's port still works after unplugging")
	}

	// The host still holds the dead device open, so the adapter comes back
	// under another name (as a USB serial adapter re-enumerates).
	if err := s.Replug(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if s.Path() == old {
		t.Fatalf("same pty %s after replug", old)
	}
	if dest, err := os.Readlink(link); err != nil || dest != s.Path() {
		t.Fatalf("link → %q, %v; want %s", dest, err, s.Path())
	}
	p = openSerial(t, link)
	defer p.Close()
	if _, err := p.Write(hsuWakeUp); err != nil {
		t.Fatal(err)
	}
	serialExchange(t, p, "14 01", "15")
	serialExchange(t, p, "4A 01 03 00", atqbAnswer)
}

// TestNFCListAfterStaleFrame: libnfc's nfc-list still lists the card when
// an old InListPassiveTarget answer waits in the line (libnfc flushes its
// input when it opens the port, pn532_uart_open).
func TestNFCListAfterStaleFrame(t *testing.T) {
	s := startSim(t, Options{Card: newTestCard(t), Faults: FaultOptions{StaleFrames: [][]byte{oldListAnswer, rsp("4B 00")}}})
	out := runNFCList(t, s.Path())
	for _, want := range nfcListTarget {
		if !strings.Contains(out, want) {
			t.Fatalf("nfc-list output lacks %q:\n%s", want, out)
		}
	}
}

// TestNoGoroutinesLeft: every bus stops all its goroutines on Close, also
// with a command still running.
func TestNoGoroutinesLeft(t *testing.T) {
	for _, bus := range []string{BusUART, BusSPI, BusI2C} {
		t.Run(bus, func(t *testing.T) {
			noLeak(t)
			clk := newFakeClock()
			s, err := Start(t.Context(), Options{Bus: bus, Awake: true, Timing: fastTiming, Card: newTestCard(t), Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			s.Remove()
			wait := cmd("4A 01 03 00") // MaxRetries FF: waits for a card
			switch bus {
			case BusUART:
				p := openSerial(t, s.Path())
				serialExchange(t, p, "02", "03 32 01 06 07")
				if _, err := p.Write(wait); err != nil {
					t.Fatal(err)
				}
				readN(t, p, len(pn532.ACK))
				p.Close()
			case BusSPI:
				c, err := s.SPI().Connect(0, 0, 8)
				if err != nil {
					t.Fatal(err)
				}
				hs := &spiHost{t: t, c: c, reverse: true}
				hs.exchange(s, "02", "03 32 01 06 07")
				hs.write(wait)
			case BusI2C:
				hs := &i2cHost{t: t, b: s.I2C(), clk: clk, hz: 100_000}
				hs.exchange("02", "03 32 01 06 07")
				hs.write(wait)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-s.Done():
			default:
				t.Fatal("Done not closed after Close")
			}
		})
	}
}
