package sim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"testing"
	"time"
)

// TestChipCommands walks the command set like the datasheet's tables: each
// row is a command (data after TFI D4) and the exact answer (after TFI D5),
// on a chip with a My Number Card in the field.
func TestChipCommands(t *testing.T) {
	tests := []struct {
		name      string
		setup     []string // commands run first, answers unchecked
		cmd, want string
	}{
		{name: "Diagnose line test echoes libnfc's probe", cmd: "00 00 6C 69 62 6E 66 63", want: "01 00 6C 69 62 6E 66 63"},
		{name: "Diagnose line test, empty", cmd: "00 00", want: "01 00"},
		{name: "Diagnose ROM test", cmd: "00 01", want: "01 00"},
		{name: "Diagnose presence without target", cmd: "00 06", want: "01 27"},
		{name: "Diagnose presence of activated card", setup: []string{"4A 01 03 00"}, cmd: "00 06", want: "01 00"},
		{name: "Diagnose polling test", setup: []string{"4A 01 03 00"}, cmd: "00 04 00", want: "01 00"},
		{name: "GetFirmwareVersion", cmd: "02", want: "03 32 01 06 07"},
		{name: "GetGeneralStatus idle", cmd: "04", want: "05 00 00 00 00"},
		{name: "GetGeneralStatus with target", setup: []string{"4A 01 03 00"}, cmd: "04", want: "05 00 00 01 01 00 00 00 00"},
		{name: "ReadRegister power-on CIU", cmd: "06 63 02 63 03 63 0D 63 38 63 3D", want: "07 80 80 00 00 00"},
		{name: "WriteRegister then ReadRegister", setup: []string{"08 63 05 40 63 3C 10"}, cmd: "06 63 05 63 3C", want: "07 40 10"},
		{name: "WriteRegister", cmd: "08 63 05 40 63 3C 10", want: "09"},
		{name: "SetSerialBaudRate 115200", cmd: "10 04", want: "11"},
		{name: "SetParameters", cmd: "12 14", want: "13"},
		{name: "SAMConfiguration normal mode", cmd: "14 01 14 01", want: "15"},
		{name: "SAMConfiguration libnfc", cmd: "14 01", want: "15"},
		{name: "PowerDown", cmd: "16 F0", want: "17 00"},
		{name: "RFConfiguration field on", cmd: "32 01 01", want: "33"},
		{name: "RFConfiguration timings", cmd: "32 02 00 0B 0A", want: "33"},
		{name: "RFConfiguration MaxRtyCOM", cmd: "32 04 00", want: "33"},
		{name: "RFConfiguration MaxRetries", cmd: "32 05 00 01 02", want: "33"},
		{name: "RFConfiguration Type B analog", cmd: "32 0C FF 04 85", want: "33"},
		{name: "InListPassiveTarget 106B AFI 00", cmd: "4A 01 03 00", want: atqbAnswer},
		{name: "InListPassiveTarget 106B probabilistic", cmd: "4A 01 03 00 01", want: atqbAnswer},
		{name: "InListPassiveTarget 106B matching AFI family", cmd: "4A 02 03 00", want: atqbAnswer},
		{name: "InListPassiveTarget 106A: no Type A card", setup: []string{"32 05 00 01 02"}, cmd: "4A 01 00", want: "4B 00"},
		{name: "InListPassiveTarget FeliCa: none", setup: []string{"32 05 00 01 00"}, cmd: "4A 01 01 00 FF FF 01 00", want: "4B 00"},
		{name: "InListPassiveTarget Jewel: none", setup: []string{"32 05 00 01 00"}, cmd: "4A 01 04", want: "4B 00"},
		{name: "InListPassiveTarget other AFI: silent card", setup: []string{"32 05 00 01 00"}, cmd: "4A 01 03 21", want: "4B 00"},
		{name: "InAutoPoll ISO/IEC 14443-4B", cmd: "60 01 01 23", want: "61 01 23 0F 01 50 12 34 56 78 00 00 00 00 B3 81 A1 01 01"},
		{name: "InAutoPoll Type A only", cmd: "60 02 01 10", want: "61 00"},
		{name: "InDataExchange SELECT JPKI AP", setup: []string{"4A 01 03 00"}, cmd: "40 01 00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01", want: "41 00 90 00"},
		{name: "InDataExchange unknown AID", setup: []string{"4A 01 03 00"}, cmd: "40 01 00 A4 04 0C 02 A0 00", want: "41 00 6A 82"},
		{name: "InDataExchange token", setup: []string{"4A 01 03 00", "40 01 00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01", "40 01 00 A4 02 0C 02 00 06"},
			cmd: "40 01 00 B0 00 00 20", want: "41 00 4A 50 4B 49 41 50 49 43 43 54 4F 4B 45 4E 32 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 90 00"},
		{name: "InDataExchange without target", cmd: "40 01 00 A4 04 0C 00", want: "41 27"},
		{name: "InDataExchange to Tg 2", setup: []string{"4A 01 03 00"}, cmd: "40 02 00 B0 00 00 01", want: "41 27"},
		{name: "InDataExchange host chaining chunk", setup: []string{"4A 01 03 00"}, cmd: "40 41 00 A4 04 0C", want: "41 00"},
		{name: "InCommunicateThru empty", setup: []string{"32 01 01"}, cmd: "42", want: "43 01"},
		{name: "InCommunicateThru unknown probe", setup: []string{"4A 01 03 00"}, cmd: "42 06 00", want: "43 01"},
		{name: "InCommunicateThru probe on Type A framing", setup: []string{"32 01 01"}, cmd: "42 05 00 08", want: "43 01"},
		{name: "InDeselect", setup: []string{"4A 01 03 00"}, cmd: "44 01", want: "45 00"},
		{name: "InDeselect all without target", cmd: "44 00", want: "45 00"},
		{name: "InDeselect unknown Tg", cmd: "44 01", want: "45 27"},
		{name: "InRelease", setup: []string{"4A 01 03 00"}, cmd: "52 01", want: "53 00"},
		{name: "InRelease all", cmd: "52 00", want: "53 00"},
		{name: "InSelect after InDeselect", setup: []string{"4A 01 03 00", "44 01"}, cmd: "54 01", want: "55 00"},
		{name: "InSelect unknown", cmd: "54 01", want: "55 27"},
		{name: "halted card ignores REQB", setup: []string{"32 05 00 01 01", "4A 01 03 00", "52 00"}, cmd: "4A 01 03 00", want: "4B 00"},
		{name: "RF off/on resets a halted card", setup: []string{"4A 01 03 00", "52 00", "32 01 00", "32 01 01"}, cmd: "4A 01 03 00", want: atqbAnswer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newTestChip(t, newTestCard(t))
			for _, s := range tc.setup {
				run(t, c, s)
			}
			expect(t, c, tc.cmd, tc.want)
		})
	}
}

// TestChipSyntaxErrors: commands the chip answers with the error frame.
func TestChipSyntaxErrors(t *testing.T) {
	for _, data := range []string{
		"FE",          // unknown command
		"8C 00",       // TgInitAsTarget: target mode is not simulated
		"00",          // Diagnose without NumTst
		"00 05",       // echo-back mode is not simulated
		"06 63",       // ReadRegister with half an address
		"08 63 05",    // WriteRegister without value
		"12",          // SetParameters without flags
		"14 00",       // SAMConfiguration mode 0
		"32 05 00 01", // MaxRetries with two bytes
		"32 09 00",    // unknown RF item
		"4A 00 03 00", // MaxTg 0
		"4A 03 03 00", // MaxTg 3
		"4A 01 03",    // Type B without AFI
		"4A 01 05 00", // 212 kbps Type B is a PN533 feature
		"40",          // InDataExchange without Tg
		"44",          // InDeselect without Tg
		"16",          // PowerDown without WakeUpEnable
		"60 01 01",    // InAutoPoll without types
		"10 09",       // SetSerialBaudRate: unknown rate
	} {
		c, _ := newTestChip(t, newTestCard(t))
		_, err := c.Process(context.Background(), h(data))
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("Process(%s) = %v, want ErrSyntax", data, err)
		}
	}
	c, _ := newTestChip(t, nil)
	if _, err := c.Process(context.Background(), nil); !errors.Is(err, ErrSyntax) {
		t.Errorf("empty command: %v", err)
	}
}

// TestMaxRetriesInfinite: with MxRtyPassiveActivation FF (the power-on
// default) InListPassiveTarget waits for a card; it answers as soon as one
// is placed, and the host can abort the wait.
func TestMaxRetriesInfinite(t *testing.T) {
	c, f := newTestChip(t, nil)
	type res struct {
		out []byte
		err error
	}
	done := make(chan res, 1)
	go func() {
		out, err := c.Process(context.Background(), h("4A 01 03 00"))
		done <- res{out, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("answered % X, %v without a card", r.out, r.err)
	case <-time.After(10 * fastTiming.PollAttempt):
	}
	f.Place(newTestCard(t), 0)
	select {
	case r := <-done:
		if r.err != nil || !bytes.Equal(r.out, h(atqbAnswer)) {
			t.Fatalf("got % X, %v", r.out, r.err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no answer after the card arrived")
	}

	// Abort: the context is what the link cancels on a host ACK.
	c, _ = newTestChip(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		out, err := c.Process(ctx, h("4A 01 03 00"))
		done <- res{out, err}
	}()
	time.Sleep(5 * fastTiming.PollAttempt)
	cancel()
	select {
	case r := <-done:
		if !errors.Is(r.err, context.Canceled) {
			t.Fatalf("aborted wait: % X, %v", r.out, r.err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("abort did not end the wait")
	}
}

// TestMaxRetriesFinite: n retries mean n+1 attempts of PollAttempt each.
func TestMaxRetriesFinite(t *testing.T) {
	c, _ := newTestChip(t, nil)
	expect(t, c, "32 05 00 01 03", "33")
	start := time.Now()
	expect(t, c, "4A 01 03 00", "4B 00")
	if d := time.Since(start); d < 4*fastTiming.PollAttempt || d > 2*time.Second {
		t.Fatalf("4 attempts took %v", d)
	}
}

// TestRemovalAfterAPDUs pulls the card after the second APDU: the third
// exchange times out with status 01, presence says gone, and a new card
// must be listed again.
func TestRemovalAfterAPDUs(t *testing.T) {
	c, f := newTestChip(t, nil)
	f.Place(newTestCard(t), 2)
	activate(t, c)
	expect(t, c, "40 01 00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01", "41 00 90 00")
	// libnfc's PN532 presence check: R(NAK) with CID 1. The card got one
	// I-block (block number 1 → 0), so R(NAK) 0 makes it send its last
	// block again (ISO/IEC 14443-4 rule 11).
	expect(t, c, "42 BA 01", "43 00 0A 01 90 00")
	expect(t, c, "40 01 00 A4 02 0C 02 00 0A", "41 00 90 00")
	if f.Card() != nil {
		t.Fatal("card still on the field after 2 APDUs")
	}
	start := time.Now()
	expect(t, c, "40 01 00 B0 00 00 00", "41 01")
	if d := time.Since(start); d < fastTiming.Timeout {
		t.Errorf("timeout answered after %v, want ≥ %v", d, fastTiming.Timeout)
	}
	expect(t, c, "42 BA 01", "43 01")
	expect(t, c, "04", "05 01 00 01 01 00 00 00 00")
	// The same card object placed again is a new arrival: power-up state.
	f.Place(newTestCard(t), 0)
	expect(t, c, "40 01 00 B0 00 00 01", "41 01") // the old activation is gone
	expect(t, c, "4A 01 03 00", atqbAnswer)
	expect(t, c, "40 01 00 B0 00 00 01", "41 00 69 86") // nothing selected after power-up
	if st := f.State(); st.TotalAPDUs != 3 || st.APDUs != 1 {
		t.Errorf("APDU counts %+v", st)
	}
}

// TestRemoveAfterLater schedules the removal on a card already placed.
func TestRemoveAfterLater(t *testing.T) {
	c, f := newTestChip(t, newTestCard(t))
	activate(t, c)
	expect(t, c, "40 01 00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01", "41 00 90 00")
	f.RemoveAfter(1)
	expect(t, c, "40 01 00 A4 02 0C 02 00 0A", "41 00 90 00")
	expect(t, c, "40 01 00 A4 02 0C 02 00 0A", "41 01")
}

// TestReadCertificateExtendedFrame reads the whole auth certificate with
// 256-byte READ BINARY: full chunks come back as 41 00 + 256 bytes + 90 00
// (260 bytes, an extended frame on the wire), the last with 6282.
func TestReadCertificateExtendedFrame(t *testing.T) {
	cert, _, _ := testCerts(t)
	c, _ := newTestChip(t, newTestCard(t))
	activate(t, c)
	expect(t, c, "40 01 00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01", "41 00 90 00")
	expect(t, c, "40 01 00 A4 02 0C 02 00 0A", "41 00 90 00")
	var got []byte
	for off := 0; ; off += 256 {
		out := run(t, c, "40 01 00 B0 "+hexByte(off>>8)+hexByte(off)+" 00")
		if out[0] != 0x41 || out[1] != 0x00 {
			t.Fatalf("status % X", out[:2])
		}
		data, sw := out[2:len(out)-2], out[len(out)-2:]
		got = append(got, data...)
		if len(data) == 256 {
			if !bytes.Equal(sw, h("90 00")) {
				t.Fatalf("full chunk SW % X", sw)
			}
			if frame := rspBytes(out); frame[3] != 0xFF || frame[4] != 0xFF {
				t.Fatalf("256-byte answer not in an extended frame: % X", frame[:8])
			}
			continue
		}
		if !bytes.Equal(sw, h("62 82")) {
			t.Fatalf("short last chunk SW % X", sw)
		}
		break
	}
	if !bytes.Equal(got, cert) {
		t.Fatalf("read %d bytes, certificate has %d", len(got), len(cert))
	}
}

func hexByte(b int) string {
	const digits = "0123456789ABCDEF"
	return string([]byte{digits[b>>4&0xF], digits[b&0xF]}) + " "
}

// bigTarget answers every APDU with n bytes and 90 00, to exercise MI.
type bigTarget struct{ n int }

func (b bigTarget) TypeB() TypeB { return testTypeB }
func (b bigTarget) PowerOn()     {}
func (b bigTarget) Transmit(_ context.Context, apdu []byte) ([]byte, error) {
	out := make([]byte, b.n, b.n+2)
	for i := range out {
		out[i] = byte(i)
	}
	return append(out, 0x90, 0x00), nil
}

// TestMIChaining: an answer longer than 262 bytes comes as 41 40 + 262
// bytes, the rest after 40 01.
func TestMIChaining(t *testing.T) {
	c, _ := newTestChip(t, bigTarget{n: 600})
	activate(t, c)
	var all []byte
	out := run(t, c, "40 01 00 CA 00 00 00")
	for i := 0; out[1] == StatusMI; i++ {
		if len(out) != 2+262 {
			t.Fatalf("MI chunk of %d bytes", len(out)-2)
		}
		all = append(all, out[2:]...)
		out = run(t, c, "40 01")
		if i > 5 {
			t.Fatal("endless MI")
		}
	}
	if out[1] != StatusOK {
		t.Fatalf("last status %02X", out[1])
	}
	all = append(all, out[2:]...)
	if len(all) != 602 || all[599] != byte(599%256) || !bytes.Equal(all[600:], h("90 00")) {
		t.Fatalf("reassembled %d bytes", len(all))
	}
}

// TestHostChaining: Tg 41 chunks are collected and sent as one APDU.
func TestHostChaining(t *testing.T) {
	c, _ := newTestChip(t, newTestCard(t))
	activate(t, c)
	expect(t, c, "40 41 00 A4 04 0C 0A D3 92", "41 00")
	expect(t, c, "40 41 F0 00 26 01", "41 00")
	expect(t, c, "40 01 00 00 00 01", "41 00 90 00")
}

// TestDeselectedTargetReselects: InDataExchange to a deselected target wakes
// it again (WUPB + ATTRIB), like the firmware does.
func TestDeselectedTargetReselects(t *testing.T) {
	c, _ := newTestChip(t, newTestCard(t))
	activate(t, c)
	expect(t, c, "44 01", "45 00")
	expect(t, c, "40 01 00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01", "41 00 90 00")
}

// TestPowerDown: the chip sleeps after answering; the field goes off, so the
// card is reset and the target forgotten.
func TestPowerDown(t *testing.T) {
	c, _ := newTestChip(t, newTestCard(t))
	activate(t, c)
	expect(t, c, "16 F0", "17 00")
	if !c.Asleep() || c.State().RF || c.State().Target {
		t.Fatalf("after PowerDown: %+v", c.State())
	}
	if !c.wakeByHSU() {
		t.Fatal("HSU did not wake the chip")
	}
	expect(t, c, "04", "05 00 00 00 00")

	expect(t, c, "16 20", "17 00") // only SPI wakes it
	if c.wakeByHSU() {
		t.Fatal("woken by HSU although only SPI was enabled")
	}
	c.Reset()
	if !c.wakeByHSU() {
		t.Fatal("after Reset the chip is in LowVbat and HSU wakes it")
	}
}

// TestChipStartsInLowVbat unless Awake is set.
func TestChipStartsInLowVbat(t *testing.T) {
	if !NewChip(NewField(), nil).Asleep() {
		t.Error("a new chip must start asleep (LowVbat)")
	}
	if NewChip(NewField(), &ChipOptions{Awake: true}).Asleep() {
		t.Error("Awake chip asleep")
	}
}

// TestSoftwareISODEP runs the host-side ISO-DEP path of protocols.md over
// InCommunicateThru: DESELECT the firmware's activation, WUPB, own ATTRIB
// with FSD 256 and CID 0, then I-blocks with chaining in both directions.
func TestSoftwareISODEP(t *testing.T) {
	cert, _, _ := testCerts(t)
	c, _ := newTestChip(t, newTestCard(t))
	activate(t, c)
	steps := []struct{ cmd, want string }{
		{"42 CA 01", "43 00 CA 01"},                                              // S(DESELECT), CID 1
		{"42 05 00 00", "43 01"},                                                 // REQB: halted card is silent
		{"42 05 00 08", "43 00 50 12 34 56 78 00 00 00 00 B3 81 A1"},             // WUPB
		{"42 1D 00 00 00 00 00 08 01 00", "43 01"},                               // ATTRIB to the wrong PUPI
		{"42 1D 12 34 56 78 00 08 01 00", "43 00 00"},                            // ATTRIB: FSD 256, CID 0
		{"42 02 00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01", "43 00 02 90 00"}, // I(0)
		{"42 13 00 A4 02 0C", "43 00 A3"},                                        // I(1) chaining → R(ACK)
		{"42 02 02 00 0A", "43 00 02 90 00"},                                     // I(0) last part
		{"42 02 00 B0 00 00 00", "43 00 13 " + spaced(cert[:253])},               // 258 bytes: chained
		{"42 A3", "43 00 13 " + spaced(cert[:253])},                              // R(ACK) same number: resend
		{"42 A2", "43 00 02 " + spaced(cert[253:256]) + " 90 00"},                // R(ACK): next block
		{"42 B2", "43 00 02 " + spaced(cert[253:256]) + " 90 00"},                // R(NAK) same number: resend
		{"42 B3", "43 00 A2"},                                                    // R(NAK) other number: R(ACK)
		{"42 0A 01 00 B0 00 00 01", "43 01"},                                     // block with CID 1: card has CID 0
		{"40 01 00 B0 00 00 01", "41 01"},                                        // the firmware's CID-1 session is gone
		{"42 C2", "43 00 C2"},                                                    // S(DESELECT)
		{"42 02 00 B0 00 00 01", "43 01"},                                        // halted
	}
	for _, s := range steps {
		expect(t, c, s.cmd, s.want)
	}
}

func spaced(b []byte) string {
	var s []byte
	const digits = "0123456789ABCDEF"
	for _, x := range b {
		s = append(s, digits[x>>4], digits[x&0xF], ' ')
	}
	return string(s)
}

func TestAFIMatches(t *testing.T) {
	for _, tc := range []struct {
		req, card byte
		want      bool
	}{
		{0x00, 0x00, true}, {0x00, 0x21, true}, {0x21, 0x21, true}, {0x20, 0x21, true},
		{0x01, 0x21, true}, {0x21, 0x00, false}, {0x31, 0x21, false}, {0x22, 0x21, false},
	} {
		if got := afiMatches(tc.req, tc.card); got != tc.want {
			t.Errorf("afiMatches(%02X, %02X) = %v", tc.req, tc.card, got)
		}
	}
}

// TestSoftwareISODEPWTX: over InCommunicateThru the card asks for a waiting
// time extension before a signature; the host echoes S(WTX) and then gets
// the 256-byte signature in two chained I-blocks.
func TestSoftwareISODEPWTX(t *testing.T) {
	_, _, key := testCerts(t)
	c, _ := newTestChip(t, newTestCard(t))
	activate(t, c)
	for _, s := range []struct{ cmd, want string }{
		{"42 CA 01", "43 00 CA 01"},
		{"42 05 00 08", "43 00 50 12 34 56 78 00 00 00 00 B3 81 A1"},
		{"42 1D 12 34 56 78 00 08 01 00", "43 00 00"},
		{"42 02 " + selectJPKI, "43 00 02 90 00"},
		{"42 03 " + selectPIN, "43 00 03 90 00"},
		{"42 02 00 20 00 80 04 31 32 33 34", "43 00 02 90 00"},
		{"42 03 00 A4 02 0C 02 00 17", "43 00 03 90 00"},
	} {
		expect(t, c, s.cmd, s.want)
	}
	digest := sha256.Sum256([]byte("nonce"))
	di := append(h("30 31 30 0D 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20"), digest[:]...)
	sign := append(append(h("42 02 80 2A 00 80"), byte(len(di))), di...)
	sign = append(sign, 0x00)
	out, err := c.Process(context.Background(), sign)
	if err != nil || !bytes.Equal(out, h("43 00 F2 01")) {
		t.Fatalf("signature command: % X, %v; want S(WTX) request", out, err)
	}
	expect(t, c, "42 B2", "43 00 F2 01") // R(NAK) with the current number: resend
	first := run(t, c, "42 F2 01")       // S(WTX) response
	if len(first) != 2+1+253 || first[2] != 0x12 {
		t.Fatalf("first block % X", first[:3])
	}
	last := run(t, c, "42 A3")
	if len(last) != 2+1+5 || last[2] != 0x03 || !bytes.Equal(last[len(last)-2:], h("90 00")) {
		t.Fatalf("last block % X", last)
	}
	sig := append(bytes.Clone(first[3:]), last[3:len(last)-2]...)
	if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		t.Fatalf("signature: %v", err)
	}
}
