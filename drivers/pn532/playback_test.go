package pn532

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"
)

// Helpers shared by the bus tests (spi_test.go, i2c_test.go). Their names
// start with bus, spiOp or i2cOp so they do not collide with the engine's
// test helpers in this package.

// busHex parses "01 a0 b0" (and "00*8") like a recording does.
func busHex(t testing.TB, s string) []byte {
	t.Helper()
	var h Hex
	if err := h.UnmarshalText([]byte(s)); err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return h
}

// busCmd is a host frame: TFI D4, then the command and its parameters,
// checksums computed, e.g. busCmd(t, "02") for GetFirmwareVersion.
func busCmd(t testing.TB, s string) []byte {
	t.Helper()
	f, err := Encode(TFIHost, busHex(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// busRsp is a chip frame: TFI D5, then the response code and data.
func busRsp(t testing.TB, s string) []byte {
	t.Helper()
	f, err := Encode(TFIChip, busHex(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// busFW is the GetFirmwareVersion answer of a PN532 v1.6 (UM0701-02
// §7.2.2): IC 32, Ver 01, Rev 06, Support 07.
const busFW = "03 32 01 06 07"

// busGetFirmware runs GetFirmwareVersion on t the way the command engine
// does: write the command, read the ACK, read the response.
func busGetFirmware(t *testing.T, tr Transport) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.WriteFrame(ctx, busCmd(t, "02")); err != nil {
		t.Fatalf("WriteFrame: %v", err)
	}
	f, err := tr.ReadFrame(ctx)
	if err != nil || f.Kind != KindACK {
		t.Fatalf("ReadFrame = %v, %v; want the ACK", f, err)
	}
	f, err = tr.ReadFrame(ctx)
	if err != nil {
		t.Fatalf("ReadFrame: %v", err)
	}
	if f.Kind != KindInfo || f.TFI != TFIChip || !bytes.Equal(f.Data, busHex(t, busFW)) {
		t.Fatalf("ReadFrame = %+v; want D5 %s", f, busFW)
	}
}

func TestHexText(t *testing.T) {
	for _, tc := range []struct {
		bytes []byte
		text  string
	}{
		{nil, ""},
		{[]byte{0x01, 0xA0, 0xB0}, "01 a0 b0"},
		{bytes.Repeat([]byte{0}, 7), "00 00 00 00 00 00 00"},
		{bytes.Repeat([]byte{0}, 8), "00*8"},
		{append([]byte{0x03}, make([]byte, 275)...), "03 00*275"},
		{append(append([]byte{0xE8}, make([]byte, 9)...), 0xFF), "e8 00*9 ff"},
	} {
		if got := Hex(tc.bytes).String(); got != tc.text {
			t.Errorf("Hex(% x).String() = %q, want %q", tc.bytes, got, tc.text)
		}
		var h Hex
		if err := h.UnmarshalText([]byte(tc.text)); err != nil || !bytes.Equal(h, tc.bytes) {
			t.Errorf("UnmarshalText(%q) = % x, %v; want % x", tc.text, []byte(h), err, tc.bytes)
		}
	}
	// Other spellings that read the same.
	for text, want := range map[string][]byte{
		"0102 A0":   {0x01, 0x02, 0xA0},
		" ff*3\n00": {0xFF, 0xFF, 0xFF, 0x00},
	} {
		var h Hex
		if err := h.UnmarshalText([]byte(text)); err != nil || !bytes.Equal(h, want) {
			t.Errorf("UnmarshalText(%q) = % x, %v; want % x", text, []byte(h), err, want)
		}
	}
	for _, bad := range []string{"0", "zz", "00*0", "00*x", "0102*3", "00*2000000"} {
		var h Hex
		if err := h.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) = % x, want an error", bad, []byte(h))
		}
	}
}

func TestRecordingRoundTrip(t *testing.T) {
	rec := &Recording{
		Bus:         BusSPI,
		Note:        "round trip",
		ReverseBits: true,
		Ops: []Op{
			spiOpWrite(busCmd(t, "02")),
			spiOpStatus(true),
			spiOpRead(ACK),
		},
	}
	var b bytes.Buffer
	if err := WriteRecording(&b, rec); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"w":"03 00*275"`) {
		t.Errorf("a DR op does not read as 03 00*275:\n%s", b.String())
	}
	got, err := ReadRecording(&b)
	if err != nil {
		t.Fatalf("ReadRecording: %v\n%s", err, b.String())
	}
	if got.Bus != rec.Bus || got.Note != rec.Note || got.ReverseBits != rec.ReverseBits || len(got.Ops) != len(rec.Ops) {
		t.Fatalf("round trip = %+v, want %+v", got, rec)
	}
	for i := range rec.Ops {
		if got.Ops[i].Addr != rec.Ops[i].Addr || !bytes.Equal(got.Ops[i].W, rec.Ops[i].W) || !bytes.Equal(got.Ops[i].R, rec.Ops[i].R) {
			t.Errorf("op %d = %+v, want %+v", i, got.Ops[i], rec.Ops[i])
		}
	}
}

func TestReadRecordingRejects(t *testing.T) {
	for name, js := range map[string]string{
		"unknown bus":        `{"bus":"usb","ops":[]}`,
		"unknown field":      `{"bus":"spi","ops":[],"speed":1000000}`,
		"empty op":           `{"bus":"uart","ops":[{}]}`,
		"address on spi":     `{"bus":"spi","ops":[{"addr":36,"w":"02 00"}]}`,
		"address too big":    `{"bus":"i2c","ops":[{"addr":256,"r":"01"}]}`,
		"uneven spi":         `{"bus":"spi","ops":[{"w":"02 00","r":"01"}]}`,
		"reverse_bits i2c":   `{"bus":"i2c","reverse_bits":true,"ops":[]}`,
		"bad hex":            `{"bus":"uart","ops":[{"w":"0g"}]}`,
		"not a json object":  `[]`,
		"trailing truncated": `{"bus":"uart","ops":[`,
	} {
		if rec, err := ReadRecording(strings.NewReader(js)); err == nil {
			t.Errorf("%s: ReadRecording(%s) = %+v, want an error", name, js, rec)
		}
	}
}

func TestUARTPlaybackRunsCommand(t *testing.T) {
	rec := &Recording{Bus: BusUART, Ops: []Op{
		{W: busCmd(t, "02"), R: ACK},
		{R: busRsp(t, busFW)},
	}}
	p := rec.UARTPlayback()
	u := NewUART(p)
	busGetFirmware(t, u)
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	_ = u.Close()
}

func TestUARTPlaybackMismatch(t *testing.T) {
	cmd := busCmd(t, "02")
	other := busCmd(t, "4A 01 03 00")
	for _, tc := range []struct {
		name   string
		ops    []Op
		writes [][]byte
		want   []string // in the error
	}{{
		name:   "different command",
		ops:    []Op{{W: cmd, R: ACK}},
		writes: [][]byte{other},
		want:   []string{"op 0", fmt.Sprintf("host wrote % x", other), fmt.Sprintf("recording expects % x", cmd)},
	}, {
		name:   "second op differs",
		ops:    []Op{{W: ACK}, {W: cmd}},
		writes: [][]byte{ACK, NACK},
		want:   []string{"op 1", fmt.Sprintf("host wrote % x", NACK), fmt.Sprintf("recording expects % x", cmd)},
	}, {
		name:   "write while the chip is to send",
		ops:    []Op{{R: ACK}, {W: cmd}},
		writes: [][]byte{cmd},
		want:   []string{"op 0", "still to send " + fmt.Sprintf("% x", ACK)},
	}, {
		name:   "write after the end",
		ops:    []Op{{W: ACK}},
		writes: [][]byte{ACK, NACK},
		want:   []string{"after the last of 1 recorded ops", fmt.Sprintf("% x", NACK)},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := (&Recording{Bus: BusUART, Ops: tc.ops}).UARTPlayback()
			var err error
			for _, w := range tc.writes {
				if _, err = p.Write(w); err != nil {
					break
				}
			}
			if !errors.Is(err, ErrPlayback) {
				t.Fatalf("Write error = %v, want ErrPlayback", err)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if derr := p.Close(); derr != err {
				t.Errorf("Close = %v, want the mismatch %v", derr, err)
			}
		})
	}
}

func TestUARTPlaybackSplitWrites(t *testing.T) {
	cmd := busCmd(t, "02")
	p := (&Recording{Bus: BusUART, Ops: []Op{{W: cmd[:3]}, {W: cmd[3:]}}}).UARTPlayback()
	for _, w := range [][]byte{cmd[:1], cmd[1:5], cmd[5:]} {
		if _, err := p.Write(w); err != nil {
			t.Fatalf("Write(% x): %v", w, err)
		}
	}
	if err := p.Done(); err != nil {
		t.Errorf("Done: %v", err)
	}
}

func TestUARTPlaybackReportsUnusedOps(t *testing.T) {
	cmd := busCmd(t, "02")
	p := (&Recording{Bus: BusUART, Ops: []Op{{W: cmd, R: ACK}, {W: ACK}}}).UARTPlayback()
	if _, err := p.Write(cmd); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 16)
	if n, err := p.Read(b); err != nil || !bytes.Equal(b[:n], ACK) {
		t.Fatalf("Read = % x, %v; want the ACK", b[:n], err)
	}
	err := p.Close()
	if !errors.Is(err, ErrPlayback) || !strings.Contains(err.Error(), "1 of 2 recorded ops unused, from op 1") {
		t.Errorf("Close = %v, want op 1 reported unused", err)
	}
	if n, err := p.Read(b); n != 0 || err == nil {
		t.Errorf("Read after Close = %d, %v; want an error", n, err)
	}
}

// TestRecordingFixtures plays every recording in testdata: each is one
// GetFirmwareVersion exchange, and every recorded transaction must be used.
func TestRecordingFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recordings in testdata (%v)", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rec, err := ReadRecording(f)
			if err != nil {
				t.Fatal(err)
			}
			switch rec.Bus {
			case BusUART:
				p := rec.UARTPlayback()
				u := NewUART(p)
				defer u.Close()
				busGetFirmware(t, u)
				if err := p.Close(); err != nil {
					t.Error(err)
				}
			case BusSPI:
				p := rec.SPIPlayback()
				c, err := p.Connect(physic.MegaHertz, spi.Mode0, 8)
				if err != nil {
					t.Fatal(err)
				}
				s, err := NewSPI(c, &SPIOpts{HardwareLSBFirst: !rec.ReverseBits})
				if err != nil {
					t.Fatal(err)
				}
				s.sleep = busNoSleep
				busGetFirmware(t, s)
				if err := p.Close(); err != nil {
					t.Error(err)
				}
			case BusI2C:
				p := rec.I2CPlayback()
				i := newTestI2C(t, p, nil)
				busGetFirmware(t, i)
				if err := p.Close(); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// The recorders, wrapped around a playback of a recording, must record
// that recording again.
func TestRecorders(t *testing.T) {
	t.Run("spi", func(t *testing.T) {
		want := spiFirmwareRecording(t, true)
		p := want.SPIPlayback()
		c, err := p.Connect(physic.MegaHertz, spi.Mode0, 8)
		if err != nil {
			t.Fatal(err)
		}
		r := NewSPIRecorder(c, true)
		s, err := NewSPI(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.sleep = busNoSleep
		busGetFirmware(t, s)
		if err := p.Close(); err != nil {
			t.Error(err)
		}
		busSameOps(t, r.Recording("again"), want)
	})
	t.Run("i2c", func(t *testing.T) {
		want := i2cFirmwareRecording(t)
		p := want.I2CPlayback()
		r := NewI2CRecorder(p)
		i := newTestI2C(t, r, nil)
		busGetFirmware(t, i)
		if err := p.Close(); err != nil {
			t.Error(err)
		}
		busSameOps(t, r.Recording("again"), want)
	})
	t.Run("uart", func(t *testing.T) {
		want := &Recording{Bus: BusUART, Ops: []Op{{W: busCmd(t, "02")}, {R: append(append([]byte(nil), ACK...), busRsp(t, busFW)...)}}}
		p := want.UARTPlayback()
		r := NewUARTRecorder(p)
		u := NewUART(r)
		busGetFirmware(t, u)
		if err := p.Close(); err != nil {
			t.Error(err)
		}
		_ = u.Close()
		busSameOps(t, r.Recording("again"), want)
	})
}

func busSameOps(t *testing.T, got, want *Recording) {
	t.Helper()
	if got.Bus != want.Bus || got.ReverseBits != want.ReverseBits || len(got.Ops) != len(want.Ops) {
		t.Fatalf("recorded %s (reverse %v) with %d ops, want %s (reverse %v) with %d", got.Bus, got.ReverseBits, len(got.Ops), want.Bus, want.ReverseBits, len(want.Ops))
	}
	for i := range want.Ops {
		g, w := got.Ops[i], want.Ops[i]
		if w.Addr == 0 && want.Bus == BusI2C {
			w.Addr = I2CAddr
		}
		if g.Addr != w.Addr || !bytes.Equal(g.W, w.W) || !bytes.Equal(g.R, w.R) {
			t.Errorf("op %d = {%#x %v | %v}, want {%#x %v | %v}", i, g.Addr, g.W, g.R, w.Addr, w.W, w.R)
		}
	}
}

func busNoSleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }
