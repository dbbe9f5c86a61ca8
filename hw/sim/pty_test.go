package sim

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tarm/serial"

	"github.com/kazashi/kazashi/drivers/iso7816"
	"github.com/kazashi/kazashi/drivers/pn532"
)

// startSim starts a simulator on a pty for one test.
func startSim(t *testing.T, opts Options) *Sim {
	t.Helper()
	if opts.Timing == (Timing{}) {
		opts.Timing = fastTiming
	}
	s, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// openSerial opens the pty slave like the daemon does on a real board.
func openSerial(t *testing.T, path string) *serial.Port {
	t.Helper()
	p, err := serial.OpenPort(&serial.Config{Name: path, Baud: 115200, ReadTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readN reads n bytes from a tarm/serial port (a timeout reads as 0 bytes).
func readN(t *testing.T, p *serial.Port, n int) []byte {
	t.Helper()
	var out []byte
	tmp := make([]byte, 512)
	deadline := time.Now().Add(3 * time.Second)
	for len(out) < n {
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d bytes: % X", len(out), n, out)
		}
		k, err := p.Read(tmp[:n-len(out)])
		out = append(out, tmp[:k]...)
		if err != nil && k == 0 {
			continue // read timeout
		}
	}
	return out
}

func serialExchange(t *testing.T, p *serial.Port, command, answer string) {
	t.Helper()
	if _, err := p.Write(cmd(command)); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Clone(pn532.ACK), rsp(answer)...)
	if got := readN(t, p, len(want)); !bytes.Equal(got, want) {
		t.Fatalf("%s\n got % X\nwant % X", command, got, want)
	}
}

// TestPTYSerialReopen talks to the simulator through tarm/serial on the pty
// (and its symlink), closes the port and opens it again.
func TestPTYSerialReopen(t *testing.T) {
	link := filepath.Join(t.TempDir(), "pn532")
	s := startSim(t, Options{Link: link, Card: newTestCard(t)})
	if dest, err := os.Readlink(link); err != nil || dest != s.Path() {
		t.Fatalf("link %s → %q, %v; want %s", link, dest, err, s.Path())
	}

	p := openSerial(t, link)
	if _, err := p.Write(h("55 55 00 00 00 00 00 00 00 00 00 00 00 00 00 00")); err != nil {
		t.Fatal(err)
	}
	serialExchange(t, p, "14 01 14 01", "15")
	serialExchange(t, p, "4A 01 03 00", atqbAnswer)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	for i := range 3 {
		p = openSerial(t, s.Path())
		serialExchange(t, p, "02", "03 32 01 06 07")
		serialExchange(t, p, "40 01 "+selectJPKI, "41 00 90 00")
		if i == 2 {
			// A 260-byte answer: one extended frame through the pty.
			serialExchange(t, p, "40 01 "+selectAuth, "41 00 90 00")
			cert, _, _ := testCerts(t)
			want := append(append([]byte{0x41, 0x00}, cert[:256]...), 0x90, 0x00)
			if _, err := p.Write(cmd("40 01 00 B0 00 00 00")); err != nil {
				t.Fatal(err)
			}
			full := append(bytes.Clone(pn532.ACK), rspBytes(want)...)
			if got := readN(t, p, len(full)); !bytes.Equal(got, full) {
				t.Fatalf("extended frame\n got % X\nwant % X", got, full)
			}
		}
		p.Close()
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("link left behind: %v", err)
	}
}

// TestLinkReplacesOldSymlinkOnly: a stale symlink is replaced, a regular
// file is not.
func TestLinkReplacesOldSymlinkOnly(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "pn532")
	if err := os.Symlink("/dev/null", link); err != nil {
		t.Fatal(err)
	}
	s := startSim(t, Options{Link: link})
	if dest, _ := os.Readlink(link); dest != s.Path() {
		t.Fatalf("stale link not replaced: %s", dest)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if s2, err := Start(context.Background(), Options{Link: file}); err == nil {
		s2.Close()
		t.Fatal("Start replaced a regular file")
	}
}

// TestDriverOverPTY runs the project's own PN532 driver (drivers/pn532 over
// tarm/serial, as kazashid does) against the simulator: init from LowVbat,
// Type B polling, chunked certificate read through iso7816, presence check,
// removal mid-session and release.
func TestDriverOverPTY(t *testing.T) {
	cert, _, _ := testCerts(t)
	s := startSim(t, Options{Card: newTestCard(t)})
	port := openSerial(t, s.Path())
	defer port.Close()
	u := pn532.NewUART(port)
	defer u.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The driver's defaults fit a real chip; a busy 2-core CI machine
	// (parallel test binaries, fuzzing) can delay a pty ACK beyond 100 ms.
	opts := pn532.DefaultOpts
	opts.ACKTimeout, opts.FirstACKTimeout = time.Second, 2*time.Second
	dev, err := pn532.New(ctx, u, &opts)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := dev.ListTypeB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tg.PUPI != testTypeB.PUPI || tg.MaxFrameSize() != 256 || !bytes.Equal(tg.ATTRIBRes, []byte{0x01}) {
		t.Fatalf("target %+v", tg)
	}
	card := &pn532.Card{Dev: dev, Target: tg}
	if _, err := iso7816.Transceive(ctx, card, iso7816.Command{INS: 0xA4, P1: 0x04, P2: 0x0C, Data: h("D3 92 F0 00 26 01 00 00 00 01")}); err != nil {
		t.Fatal(err)
	}
	if _, err := iso7816.Transceive(ctx, card, iso7816.Command{INS: 0xA4, P1: 0x02, P2: 0x0C, Data: h("00 0A")}); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for len(got) < len(cert) {
		n := min(256, len(cert)-len(got))
		b, err := iso7816.Transceive(ctx, card, iso7816.Command{INS: 0xB0, P1: byte(len(got) >> 8), P2: byte(len(got)), Le: n})
		if err != nil {
			t.Fatalf("READ BINARY at %d: %v", len(got), err)
		}
		got = append(got, b...)
	}
	if !bytes.Equal(got, cert) {
		t.Fatal("certificate read through the driver differs")
	}
	if ok, err := dev.Present(ctx); err != nil || !ok {
		t.Fatalf("Present = %v, %v", ok, err)
	}
	s.Remove()
	if ok, err := dev.Present(ctx); err != nil || ok {
		t.Fatalf("Present after removal = %v, %v", ok, err)
	}
	_, err = card.Transmit(ctx, h(selectJPKI))
	var se *pn532.StatusError
	if !errors.As(err, &se) || se.Code != StatusTimeout {
		t.Fatalf("exchange with a removed card: %v", err)
	}
	if err := dev.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := dev.ListTypeB(ctx); !errors.Is(err, pn532.ErrNoTarget) {
		t.Fatalf("poll on an empty field: %v", err)
	}
	s.Place(newTestCard(t))
	if _, err := dev.ListTypeB(ctx); err != nil {
		t.Fatalf("poll after placing a card: %v", err)
	}
}

// TestCardLeftActiveByACrashedHost: a host selects the card and dies
// without releasing it (the daemon killed mid-tap); the card, still
// powered by the field, stays ACTIVE and ignores REQB (ISO/IEC 14443-3
// §7.4), so a new host that only polls never sees it. The driver drops
// the field while it initialises (as libnfc does) and finds the card.
func TestCardLeftActiveByACrashedHost(t *testing.T) {
	link := filepath.Join(t.TempDir(), "pn532")
	s := startSim(t, Options{Link: link, Card: newTestCard(t)})
	p := openSerial(t, link)
	if _, err := p.Write(h("55 55 00 00 00 00 00 00 00 00 00 00 00 00 00 00")); err != nil {
		t.Fatal(err)
	}
	serialExchange(t, p, "14 01 14 01", "15")
	serialExchange(t, p, "32 05 00 01 02", "33") // finite activation retries
	serialExchange(t, p, "4A 01 03 00", atqbAnswer)
	// A second poll while the field stays on: the ACTIVE card is silent.
	serialExchange(t, p, "4A 01 03 00", "4B 00")
	p.Close() // the host dies here, without InRelease or RF off

	p = openSerial(t, s.Path())
	defer p.Close()
	opts := pn532.DefaultOpts
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := pn532.New(ctx, pn532.NewUART(p), &opts)
	if err != nil {
		t.Fatalf("pn532.New: %v", err)
	}
	tg, err := d.ListTypeB(ctx)
	if err != nil || tg == nil {
		t.Fatalf("ListTypeB after the crashed host = %v, %v; want the card", tg, err)
	}
}

// openSerialAt opens the pty slave at baud.
func openSerialAt(t *testing.T, path string, baud int) *serial.Port {
	t.Helper()
	p, err := serial.OpenPort(&serial.Config{Name: path, Baud: baud, ReadTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readFor returns what arrives on p within d.
func readFor(p *serial.Port, d time.Duration) []byte {
	var out []byte
	tmp := make([]byte, 512)
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		n, _ := p.Read(tmp)
		out = append(out, tmp[:n]...)
	}
	return out
}

var hsuWakeUp = h("55 55 00 00 00 00 00 00 00 00 00 00 00 00 00 00")

// TestPTYBaudSwitch: SetSerialBaudRate over the pty. The simulator reads
// the speed the host set on its port (termios of the pty): after the
// switch to 921600 a host still at 115200 gets no answer, and once it
// reopens its port at 921600 it does; a reset pulse brings the chip back
// to 115200.
func TestPTYBaudSwitch(t *testing.T) {
	noLeak(t)
	s := startSim(t, Options{Card: newTestCard(t)})
	p := openSerialAt(t, s.Path(), 115200)
	if _, err := p.Write(hsuWakeUp); err != nil {
		t.Fatal(err)
	}
	serialExchange(t, p, "14 01", "15")
	serialExchange(t, p, "10 07", "11") // answered at 115200
	if _, err := p.Write(pn532.ACK); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // the ACK leaves at 115200
	// Still at 115200: the chip, now at 921600, does not understand.
	if _, err := p.Write(cmd("02")); err != nil {
		t.Fatal(err)
	}
	if got := readFor(p, 200*time.Millisecond); bytes.Contains(got, pn532.ACK) {
		t.Fatalf("chip at 921600 answered a host at 115200: % X", got)
	}
	p.Close()

	p = openSerialAt(t, s.Path(), 921600)
	serialExchange(t, p, "02", "03 32 01 06 07")
	serialExchange(t, p, "4A 01 03 00", atqbAnswer)

	// RSTPD_N: back to LowVbat at 115200; the host at 921600 is lost.
	if err := s.ResetPin().Pulse(0); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(append(bytes.Clone(hsuWakeUp), cmd("14 01")...)); err != nil {
		t.Fatal(err)
	}
	if got := readFor(p, 200*time.Millisecond); bytes.Contains(got, pn532.ACK) {
		t.Fatalf("reset chip answered at 921600: % X", got)
	}
	p.Close()
	p = openSerialAt(t, s.Path(), 115200)
	defer p.Close()
	if _, err := p.Write(hsuWakeUp); err != nil {
		t.Fatal(err)
	}
	serialExchange(t, p, "14 01", "15")
}

// TestDriverAfterStaleFrame: a previous session's InListPassiveTarget
// answer waits in the line when the project's driver opens the port; its
// start-up (ACK, drain, GetFirmwareVersion with a retry) copes.
func TestDriverAfterStaleFrame(t *testing.T) {
	noLeak(t)
	s := startSim(t, Options{Card: newTestCard(t), Faults: FaultOptions{StaleFrames: [][]byte{rsp(atqbAnswer)}}})
	port := openSerial(t, s.Path())
	defer port.Close()
	u := pn532.NewUART(port)
	defer u.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	opts := pn532.DefaultOpts
	opts.ACKTimeout, opts.FirstACKTimeout = time.Second, 2*time.Second
	dev, err := pn532.New(ctx, u, &opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.ListTypeB(ctx); err != nil {
		t.Fatal(err)
	}
}
