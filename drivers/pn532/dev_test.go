package pn532

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kazashi/kazashi/drivers/iso7816"
)

// step is one host write the chip expects, byte for byte, and what the
// chip sends back after it.
type step struct {
	host []byte
	chip []byte
}

// playback is a byte-exact recorded conversation with a PN532 on HSU, in
// the style of periph's conntest: a write that differs from the recording
// fails the test, and so does a recorded step left unused. Unlike
// UARTPlayback, which plays a field recording strictly in its order, it is
// a full-duplex line: chip bytes the host has not read yet stay pending
// while the host writes, as a stale answer does when the host starts
// (TestNewDrainsStaleResponse).
type playback struct {
	t       *testing.T
	mu      sync.Mutex
	steps   []step
	pending []byte
	cond    *sync.Cond
	closed  bool
}

func newPlayback(t *testing.T, initial []byte, steps ...step) *playback {
	p := &playback{t: t, steps: steps, pending: append([]byte(nil), initial...)}
	p.cond = sync.NewCond(&p.mu)
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.closed = true
		p.cond.Broadcast()
		if len(p.steps) > 0 {
			t.Errorf("unused recorded steps; next host write expected: % X", p.steps[0].host)
		}
	})
	return p
}

func (p *playback) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.steps) == 0 {
		p.t.Errorf("unexpected host write % X", b)
		return 0, fmt.Errorf("unexpected write")
	}
	s := p.steps[0]
	if !bytes.Equal(b, s.host) {
		p.t.Errorf("host wrote\n  % X\nwant\n  % X", b, s.host)
		return 0, fmt.Errorf("mismatched write")
	}
	p.steps = p.steps[1:]
	p.pending = append(p.pending, s.chip...)
	p.cond.Broadcast()
	return len(b), nil
}

func (p *playback) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.pending) == 0 && !p.closed {
		p.cond.Wait()
	}
	if p.closed {
		return 0, errors.New("closed")
	}
	n := copy(b, p.pending)
	p.pending = p.pending[n:]
	return n, nil
}

// host and chip build information frames from datasheet-style hex.
func host(t testing.TB, s string) []byte { return frameOf(t, "D4 "+s) }
func chip(t testing.TB, s string) []byte { return frameOf(t, "D5 "+s) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// initSteps is the start-up conversation New must have with a PN532.
func initSteps(t *testing.T) []step {
	return []step{
		{host: hsuWakeUp},
		{host: ACK},
		{host: host(t, "14 01 14 01"), chip: cat(ACK, chip(t, "15"))},
		{host: host(t, "02"), chip: cat(ACK, chip(t, "03 32 01 06 07"))},
		{host: host(t, "32 05 00 01 02"), chip: cat(ACK, chip(t, "33"))},
		{host: host(t, "32 0C FF 04 85"), chip: cat(ACK, chip(t, "33"))},
		// RF field off: a card a previous host left ACTIVE starts again.
		{host: host(t, "32 01 00"), chip: cat(ACK, chip(t, "33"))},
	}
}

func testOpts() *Opts {
	o := DefaultOpts
	o.ACKTimeout = 50 * time.Millisecond
	o.CommandTimeout = 200 * time.Millisecond
	o.ExchangeTimeout = 200 * time.Millisecond
	o.PresenceTimeout = 200 * time.Millisecond
	return &o
}

func newDev(t *testing.T, initial []byte, more ...step) *Dev {
	t.Helper()
	pb := newPlayback(t, initial, append(initSteps(t), more...)...)
	u := NewUART(pb)
	t.Cleanup(func() { u.Close() })
	d, err := New(context.Background(), u, testOpts())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

func TestNewInitSequence(t *testing.T) {
	d := newDev(t, nil)
	if got := d.Firmware(); got != (Firmware{IC: 0x32, Ver: 1, Rev: 6, Support: 7}) {
		t.Fatalf("firmware %v", got)
	}
}

func TestNewDrainsStaleResponse(t *testing.T) {
	// A previous host left an InListPassiveTarget answer on the line.
	newDev(t, chip(t, "4B 00"))
}

func TestNewRejectsChipWithoutTypeB(t *testing.T) {
	pb := newPlayback(t, nil,
		step{host: hsuWakeUp},
		step{host: ACK},
		step{host: host(t, "14 01 14 01"), chip: cat(ACK, chip(t, "15"))},
		step{host: host(t, "02"), chip: cat(ACK, chip(t, "03 32 01 06 01"))},
	)
	u := NewUART(pb)
	defer u.Close()
	if _, err := New(context.Background(), u, testOpts()); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("New = %v, want ErrUnsupported", err)
	}
}

func TestNewRetriesLostFirstACK(t *testing.T) {
	pb := newPlayback(t, nil, append([]step{
		{host: hsuWakeUp},
		{host: ACK},
		{host: host(t, "14 01 14 01")}, // chip still waking: silence
	}, initSteps(t)[2:]...)...)
	u := NewUART(pb)
	defer u.Close()
	o := testOpts()
	o.FirstACKTimeout = 50 * time.Millisecond
	if _, err := New(context.Background(), u, o); err != nil {
		t.Fatalf("New: %v", err)
	}
}

func TestNewNoChip(t *testing.T) {
	pb := newPlayback(t, nil,
		step{host: hsuWakeUp}, step{host: ACK},
		step{host: host(t, "14 01 14 01")}, step{host: host(t, "14 01 14 01")},
	)
	u := NewUART(pb)
	defer u.Close()
	o := testOpts()
	o.FirstACKTimeout = 30 * time.Millisecond
	if _, err := New(context.Background(), u, o); !errors.Is(err, ErrNoACK) {
		t.Fatalf("New = %v, want ErrNoACK", err)
	}
}

func TestListTypeB(t *testing.T) {
	d := newDev(t, nil,
		step{host: host(t, "4A 01 03 00"), chip: cat(ACK, chip(t, "4B 00"))},
		step{host: host(t, "4A 01 03 00"), chip: cat(ACK, chip(t, "4B 01 01 50 12 34 56 78 00 00 00 00 B3 81 A1 01 00"))},
	)
	if _, err := d.ListTypeB(context.Background()); !errors.Is(err, ErrNoTarget) {
		t.Fatalf("empty field: %v", err)
	}
	tg, err := d.ListTypeB(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tg.Tg != 1 || tg.PUPI != [4]byte{0x12, 0x34, 0x56, 0x78} || tg.MaxFrameSize() != 256 || !bytes.Equal(tg.ATTRIBRes, []byte{0x00}) {
		t.Fatalf("target %+v", tg)
	}
	// FWI 10: 4096 × 2^10 / 13.56 MHz ≈ 309 ms.
	if fwt := tg.FWT(); fwt < 309*time.Millisecond || fwt > 310*time.Millisecond {
		t.Fatalf("FWT %v", fwt)
	}
}

func TestParseTypeBMalformed(t *testing.T) {
	for _, r := range []string{"", "01 01 50 12", "01 01 51 12 34 56 78 00 00 00 00 B3 81 A1 01 00", "01 01 50 12 34 56 78 00 00 00 00 B3 81 A1 05 00"} {
		if _, err := parseTypeB(hx(t, r)); !errors.Is(err, ErrResponse) {
			t.Errorf("parseTypeB(%s) = %v, want ErrResponse", r, err)
		}
	}
}

func TestDataExchangeMIChaining(t *testing.T) {
	d := newDev(t, nil,
		step{host: host(t, "40 01 00 B0 00 00 00"), chip: cat(ACK, chip(t, "41 40 30 82"))},
		step{host: host(t, "40 01"), chip: cat(ACK, chip(t, "41 40 01 0A"))},
		step{host: host(t, "40 01"), chip: cat(ACK, chip(t, "41 00 90 00"))},
	)
	got, err := d.DataExchange(context.Background(), 1, hx(t, "00 B0 00 00 00"))
	if err != nil {
		t.Fatal(err)
	}
	if want := hx(t, "30 82 01 0A 90 00"); !bytes.Equal(got, want) {
		t.Fatalf("got % X want % X", got, want)
	}
}

func TestDataExchangeHostChaining(t *testing.T) {
	long := bytes.Repeat([]byte{0xAB}, maxDataOut+10)
	first, _ := Encode(TFIHost, append([]byte{0x40, 0x41}, long[:maxDataOut]...))
	last, _ := Encode(TFIHost, append([]byte{0x40, 0x01}, long[maxDataOut:]...))
	d := newDev(t, nil,
		step{host: first, chip: cat(ACK, chip(t, "41 00"))},
		step{host: last, chip: cat(ACK, chip(t, "41 00 90 00"))},
	)
	got, err := d.DataExchange(context.Background(), 1, long)
	if err != nil || !bytes.Equal(got, hx(t, "90 00")) {
		t.Fatalf("got % X, %v", got, err)
	}
}

func TestDataExchangeExtendedResponse(t *testing.T) {
	body := append([]byte{0x41, 0x00}, bytes.Repeat([]byte{0x5A}, 256)...)
	body = append(body, 0x90, 0x00)
	resp, _ := Encode(TFIChip, body)
	d := newDev(t, nil, step{host: host(t, "40 01 00 B0 00 00 00"), chip: cat(ACK, resp)})
	got, err := d.DataExchange(context.Background(), 1, hx(t, "00 B0 00 00 00"))
	if err != nil || len(got) != 258 {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
}

func TestDataExchangeCardGone(t *testing.T) {
	d := newDev(t, nil, step{host: host(t, "40 01 00 B0 00 00 00"), chip: cat(ACK, chip(t, "41 01"))})
	_, err := d.DataExchange(context.Background(), 1, hx(t, "00 B0 00 00 00"))
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 0x01 || !errors.Is(err, iso7816.ErrCardLost) {
		t.Fatalf("err %v", err)
	}
}

func TestDataExchangeOtherStatusIsNotLoss(t *testing.T) {
	d := newDev(t, nil, step{host: host(t, "40 01 00"), chip: cat(ACK, chip(t, "41 02"))})
	_, err := d.DataExchange(context.Background(), 1, hx(t, "00"))
	if err == nil || errors.Is(err, ErrTargetLost) {
		t.Fatalf("CRC error reported as %v", err)
	}
}

func TestTimeoutAbortsWithACK(t *testing.T) {
	d := newDev(t, nil,
		step{host: host(t, "40 01 00 B0 00 00 00"), chip: ACK}, // then silence
		step{host: ACK}, // the abort
	)
	start := time.Now()
	_, err := d.DataExchange(context.Background(), 1, hx(t, "00 B0 00 00 00"))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err %v, want ErrTimeout", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("took %v", el)
	}
}

func TestContextCancelAborts(t *testing.T) {
	d := newDev(t, nil,
		step{host: host(t, "4A 01 03 00"), chip: ACK},
		step{host: ACK},
	)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := d.ListTypeB(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
}

func TestNoACK(t *testing.T) {
	d := newDev(t, nil, step{host: host(t, "02")})
	if _, err := d.Command(context.Background(), 0x02, nil, 0); !errors.Is(err, ErrNoACK) {
		t.Fatalf("err %v", err)
	}
}

func TestErrorFrame(t *testing.T) {
	d := newDev(t, nil, step{host: host(t, "99"), chip: cat(ACK, ErrorFrame)})
	if _, err := d.Command(context.Background(), 0x99, nil, 0); !errors.Is(err, ErrSyntax) {
		t.Fatalf("err %v", err)
	}
}

func TestBadChecksumGetsNACK(t *testing.T) {
	bad := chip(t, "03 32 01 06 07")
	bad[len(bad)-2] ^= 0xFF
	d := newDev(t, nil,
		step{host: host(t, "02"), chip: cat(ACK, bad)},
		step{host: NACK, chip: chip(t, "03 32 01 06 07")},
	)
	r, err := d.Command(context.Background(), 0x02, nil, 0)
	if err != nil || !bytes.Equal(r, hx(t, "32 01 06 07")) {
		t.Fatalf("got % X, %v", r, err)
	}
}

func TestStaleResponseSkipped(t *testing.T) {
	// An answer to an earlier command arrives before ours.
	d := newDev(t, nil, step{host: host(t, "02"), chip: cat(ACK, chip(t, "4B 00"), chip(t, "03 32 01 06 07"))})
	r, err := d.Command(context.Background(), 0x02, nil, 0)
	if err != nil || !bytes.Equal(r, hx(t, "32 01 06 07")) {
		t.Fatalf("got % X, %v", r, err)
	}
}

// TestPresent runs libnfc's PN532 presence check (pn53x_ISO14443B_4_is_present):
// the chip's InCommunicateThru timeout is set to the card's FWT (FWI 10:
// 309 ms → fRetryTimeout 0D, 409.6 ms), then R(NAK) BA 01 (CID 1, the
// firmware's). An answer means present, status 01 gone, other errors are
// tried once more; two in a row are an error. Diagnose 06 is never sent.
func TestPresent(t *testing.T) {
	d := newDev(t, nil,
		step{host: host(t, "4A 01 03 00"), chip: cat(ACK, chip(t, "4B 01 01 50 12 34 56 78 00 00 00 00 B3 81 A1 01 00"))},
		step{host: host(t, "32 02 00 0B 0D"), chip: cat(ACK, chip(t, "33"))},
		step{host: host(t, "42 BA 01"), chip: cat(ACK, chip(t, "43 00 AB 01"))},
		step{host: host(t, "42 BA 01"), chip: cat(ACK, chip(t, "43 02"))},
		step{host: host(t, "42 BA 01"), chip: cat(ACK, chip(t, "43 01"))},
		step{host: host(t, "42 BA 01"), chip: cat(ACK, chip(t, "43 03"))},
		step{host: host(t, "42 BA 01"), chip: cat(ACK, chip(t, "43 0B"))},
	)
	ctx := context.Background()
	if _, err := d.Present(ctx); err == nil {
		t.Fatal("Present without a target succeeded")
	}
	if _, err := d.ListTypeB(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := d.Present(ctx); err != nil || !got {
		t.Fatalf("Present = %v, %v; want true", got, err)
	}
	if got, err := d.Present(ctx); err != nil || got {
		t.Fatalf("Present after CRC error then timeout = %v, %v; want false", got, err)
	}
	var se *StatusError
	if got, err := d.Present(ctx); !errors.As(err, &se) || se.Code != 0x0B || got {
		t.Fatalf("Present after two damaged answers = %v, %v; want the status 0B error", got, err)
	}
}

// TestTypeA lists a Type A target with its ATS (UM0701-02 §7.3.5), checks
// the parsed ATS and runs the Type A presence check: R(NAK) B2 without CID
// (libnfc pn53x_ISO14443A_4_is_present), FWI 8 → fRetryTimeout 0B.
func TestTypeA(t *testing.T) {
	d := newDev(t, nil,
		step{host: host(t, "4A 01 00"), chip: cat(ACK, chip(t, "4B 01 01 04 00 20 04 08 3A 91 5C 05 78 80 80 02"))},
		step{host: host(t, "32 02 00 0B 0B"), chip: cat(ACK, chip(t, "33"))},
		step{host: host(t, "42 B2"), chip: cat(ACK, chip(t, "43 00 A3"))},
		step{host: host(t, "40 01 00 A4 04 00"), chip: cat(ACK, chip(t, "41 00 90 00"))},
		step{host: host(t, "4A 01 00"), chip: cat(ACK, chip(t, "4B 01 01 04 00 08 04 08 3A 91 5C"))},
	)
	ctx := context.Background()
	ta, err := d.ListTypeA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ta.UID, hx(t, "08 3A 91 5C")) || ta.SAK != 0x20 || ta.ATS.FSC != 256 || !ta.ATS.CIDSupported || !ta.ISO14443_4() || ta.Tech() != "iso14443-4a" {
		t.Fatalf("target %+v", ta)
	}
	if got, err := d.Present(ctx); err != nil || !got {
		t.Fatalf("Present = %v, %v", got, err)
	}
	c := &Card{Dev: d, Target: ta}
	if r, err := c.Transmit(ctx, hx(t, "00 A4 04 00")); err != nil || !bytes.Equal(r, hx(t, "90 00")) {
		t.Fatalf("Transmit = % X, %v", r, err)
	}
	mifare, err := d.ListTypeA(ctx)
	if err != nil || mifare.ISO14443_4() {
		t.Fatalf("MIFARE target %+v, %v", mifare, err)
	}
	if _, err := (&Card{Dev: d, Target: mifare}).Transmit(ctx, hx(t, "00 A4 04 00")); !errors.Is(err, ErrNotISODEP) {
		t.Fatalf("APDU to a non-ISO-DEP target: %v", err)
	}
}

func TestReleaseAndField(t *testing.T) {
	d := newDev(t, nil,
		step{host: host(t, "52 00"), chip: cat(ACK, chip(t, "53 00"))},
		step{host: host(t, "32 01 00"), chip: cat(ACK, chip(t, "33"))},
	)
	if err := d.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := d.RFField(context.Background(), false); err != nil {
		t.Fatal(err)
	}
}

func TestLoggableHidesCardData(t *testing.T) {
	pin := "40 01 00 20 00 80 04 31 32 33 34" // VERIFY with PIN "1234"
	if got := loggable(hx(t, pin)); strings.Contains(got, "31 32 33 34") || !strings.Contains(got, "40 01 00 20 00 80") {
		t.Fatalf("VERIFY logged as %q", got)
	}
	resp := "41 00 FF 10 0C 31 32 33 34 35 36 37 38 39 30 31 32 90 00" // an individual number
	if got := loggable(hx(t, resp)); strings.Contains(got, "31 32 33") || !strings.Contains(got, "SW 90 00") {
		t.Fatalf("response logged as %q", got)
	}
	if got := loggable(hx(t, "4A 01 03 00")); got != "4A 01 03 00" {
		t.Fatalf("poll logged as %q", got)
	}
}

// baudPort is a playback port that can change speed, like board.Serial.
type baudPort struct {
	*playback
	bauds []int
}

func (b *baudPort) SetBaud(baud int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bauds = append(b.bauds, baud)
	return nil
}

// TestSetBaud switches the HSU link to 921600 and back: SetSerialBaudRate
// 10 07, the chip's answer 11, the host's ACK, then the host port changes
// and GetFirmwareVersion checks the link at the new speed (UM0701-02
// §7.2.8). Halt brings the link back to 115200 (10 04) after releasing the
// target and switching RF off.
func TestSetBaud(t *testing.T) {
	pb := newPlayback(t, nil, append(initSteps(t),
		step{host: host(t, "10 07"), chip: cat(ACK, chip(t, "11"))},
		step{host: ACK},
		step{host: host(t, "02"), chip: cat(ACK, chip(t, "03 32 01 06 07"))},
		step{host: host(t, "52 00"), chip: cat(ACK, chip(t, "53 00"))},
		step{host: host(t, "32 01 00"), chip: cat(ACK, chip(t, "33"))},
		step{host: host(t, "10 04"), chip: cat(ACK, chip(t, "11"))},
		step{host: ACK},
		step{host: host(t, "02"), chip: cat(ACK, chip(t, "03 32 01 06 07"))},
	)...)
	port := &baudPort{playback: pb}
	u := NewUART(port)
	t.Cleanup(func() { u.Close() })
	d, err := New(context.Background(), u, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	if d.Baud() != 115200 {
		t.Fatalf("baud after New %d", d.Baud())
	}
	if err := d.SetBaud(context.Background(), 921600); err != nil {
		t.Fatal(err)
	}
	if d.Baud() != 921600 || len(port.bauds) != 1 || port.bauds[0] != 921600 {
		t.Fatalf("baud %d, port switched to %v", d.Baud(), port.bauds)
	}
	if err := d.SetBaud(context.Background(), 1234); err == nil {
		t.Fatal("SetBaud(1234) succeeded")
	}
	if err := d.Halt(); err != nil {
		t.Fatal(err)
	}
	if d.Baud() != 115200 || len(port.bauds) != 2 || port.bauds[1] != 115200 {
		t.Fatalf("after Halt: baud %d, port %v", d.Baud(), port.bauds)
	}
}

// TestSetBaudNeedsASwitchablePort: over a port that cannot change speed
// the command is never sent (the chip would switch and the host not).
func TestSetBaudNeedsASwitchablePort(t *testing.T) {
	d := newDev(t, nil)
	if err := d.SetBaud(context.Background(), 921600); !errors.Is(err, ErrNoBaudSwitch) {
		t.Fatalf("SetBaud = %v, want ErrNoBaudSwitch", err)
	}
}
