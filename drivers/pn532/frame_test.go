package pn532

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// hx turns "D4 4A 01 03 00" into bytes.
func hx(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// frameOf builds a normal information frame the long way, computing LCS
// and DCS independently of Encode, so the tests do not trust the code
// under test to produce their expectations.
func frameOf(t testing.TB, tfiAndData string) []byte {
	t.Helper()
	body := hx(t, tfiAndData)
	var sum int
	for _, b := range body {
		sum += int(b)
	}
	out := []byte{0x00, 0x00, 0xFF, byte(len(body)), byte((256 - len(body)) % 256)}
	out = append(out, body...)
	return append(out, byte((256-sum%256)%256), 0x00)
}

func TestEncodeMatchesDatasheet(t *testing.T) {
	// GetFirmwareVersion as printed in UM0701-02 §7.2.2.
	got, err := Encode(TFIHost, []byte{0x02})
	if err != nil {
		t.Fatal(err)
	}
	if want := hx(t, "00 00 FF 02 FE D4 02 2A 00"); !bytes.Equal(got, want) {
		t.Fatalf("Encode(GetFirmwareVersion) = % X, want % X", got, want)
	}
	for _, c := range []string{"D4 4A 01 03 00", "D4 14 01", "D5 4B 00", "D4 40 01 00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01"} {
		b := hx(t, c)
		got, err := Encode(b[0], b[1:])
		if err != nil {
			t.Fatal(err)
		}
		if want := frameOf(t, c); !bytes.Equal(got, want) {
			t.Errorf("Encode(%s) = % X, want % X", c, got, want)
		}
	}
}

func TestEncodeExtended(t *testing.T) {
	data := make([]byte, 263) // LEN 264 with the TFI
	data[0] = 0x41
	for i := range data[1:] {
		data[i+1] = byte(i)
	}
	got, err := Encode(TFIChip, data)
	if err != nil {
		t.Fatal(err)
	}
	// 00 00 FF FF FF LENm LENl LCS TFI ...
	if !bytes.Equal(got[:8], []byte{0x00, 0x00, 0xFF, 0xFF, 0xFF, 0x01, 0x08, 0xF7}) {
		t.Fatalf("extended header % X", got[:8])
	}
	f, n, err := Decode(got)
	if err != nil || n != len(got)-1 || f.Kind != KindInfo || f.TFI != TFIChip || !bytes.Equal(f.Data, data) {
		t.Fatalf("round trip: kind %v n %d/%d err %v", f.Kind, n, len(got), err)
	}
	if _, err := Encode(TFIHost, make([]byte, MaxFrameData+1)); !errors.Is(err, ErrLength) {
		t.Fatalf("oversize Encode: %v", err)
	}
}

func TestDecode(t *testing.T) {
	fw := frameOf(t, "D5 03 32 01 06 07")
	cases := []struct {
		name     string
		in       []byte
		kind     Kind
		data     string
		n        int
		err      error
		dropOnly int // for errors: bytes to drop
	}{
		// n stops after the checksum: the postamble is skipped by the next call.
		{name: "ACK", in: ACK, kind: KindACK, n: 5},
		{name: "NACK", in: NACK, kind: KindNACK, n: 5},
		{name: "error frame", in: ErrorFrame, kind: KindError, n: 7},
		{name: "firmware", in: fw, kind: KindInfo, data: "03 32 01 06 07", n: len(fw) - 1},
		{name: "no preamble", in: fw[1:], kind: KindInfo, data: "03 32 01 06 07", n: len(fw) - 2},
		{name: "no postamble", in: fw[:len(fw)-1], kind: KindInfo, data: "03 32 01 06 07", n: len(fw) - 1},
		{name: "long preamble and garbage", in: append(hx(t, "55 55 00 00 00 13 00"), fw...), kind: KindInfo, data: "03 32 01 06 07", n: len(fw) + 6},
		{name: "ACK then frame", in: append(append([]byte{}, ACK...), fw...), kind: KindACK, n: 5},
		{name: "empty", in: nil, err: ErrIncomplete, dropOnly: 0},
		{name: "garbage only", in: hx(t, "55 55 13"), err: ErrIncomplete, dropOnly: 3},
		{name: "garbage then 00", in: hx(t, "55 00"), err: ErrIncomplete, dropOnly: 1},
		{name: "start code only", in: hx(t, "00 00 FF"), err: ErrIncomplete, dropOnly: 1},
		{name: "truncated body", in: fw[:8], err: ErrIncomplete, dropOnly: 1},
		{name: "truncated extended header", in: hx(t, "00 00 FF FF FF 01"), err: ErrIncomplete, dropOnly: 1},
		{name: "bad LCS", in: hx(t, "00 00 FF 06 FB D5 03 32 01 06 07 EE 00"), err: ErrChecksum, dropOnly: 3},
		{name: "bad DCS", in: hx(t, "00 00 FF 06 FA D5 03 32 01 06 07 EF 00"), err: ErrChecksum, dropOnly: 3},
		{name: "LEN zero", in: hx(t, "00 00 FF 00 00 00"), err: ErrLength, dropOnly: 3},
		{name: "extended but short", in: hx(t, "00 00 FF FF FF 00 05 FB D5 03 32 01 06 EF 00"), err: ErrLength, dropOnly: 3},
		{name: "extended too long", in: hx(t, "00 00 FF FF FF 01 0A F5"), err: ErrLength, dropOnly: 3},
		{name: "bad extended LCS", in: hx(t, "00 00 FF FF FF 01 00 00"), err: ErrChecksum, dropOnly: 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, n, err := Decode(c.in)
			if c.err != nil {
				if !errors.Is(err, c.err) || n != c.dropOnly {
					t.Fatalf("Decode = n %d err %v, want n %d err %v", n, err, c.dropOnly, c.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if f.Kind != c.kind || n != c.n {
				t.Fatalf("Decode = kind %v n %d, want %v %d", f.Kind, n, c.kind, c.n)
			}
			if c.data != "" && !bytes.Equal(f.Data, hx(t, c.data)) {
				t.Fatalf("data % X, want %s", f.Data, c.data)
			}
		})
	}
}

// TestDecodeBackToBackWithoutAmbles decodes two frames sent with neither
// preamble nor postamble: the second frame's leading 00 must not be taken
// for the first one's postamble.
func TestDecodeBackToBackWithoutAmbles(t *testing.T) {
	one := frameOf(t, "D4 02")[1:] // drop preamble
	one = one[:len(one)-1]         // drop postamble
	stream := append(append([]byte{}, one...), frameOf(t, "D4 02")[1:]...)
	var got int
	for len(stream) > 0 {
		f, n, err := Decode(stream)
		stream = stream[n:]
		if err != nil {
			break
		}
		if f.Kind == KindInfo && bytes.Equal(f.Data, []byte{0x02}) {
			got++
		}
	}
	if got != 2 {
		t.Fatalf("decoded %d of 2 frames", got)
	}
}

// TestDecodeResync checks that a corrupted frame followed by a good one
// loses only the corrupted frame when the caller drops what Decode says.
func TestDecodeResync(t *testing.T) {
	bad := frameOf(t, "D5 4B 00")
	bad[len(bad)-2] ^= 0x01 // break DCS
	stream := append(append(bad, 0x42), frameOf(t, "D5 41 00 90 00")...)
	var frames []Frame
	for len(stream) > 0 {
		f, n, err := Decode(stream)
		stream = stream[n:]
		if errors.Is(err, ErrIncomplete) {
			break
		}
		if err == nil {
			frames = append(frames, f)
		}
	}
	if len(frames) != 1 || !bytes.Equal(frames[0].Data, hx(t, "41 00 90 00")) {
		t.Fatalf("frames after resync: %+v", frames)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(ACK)
	f.Add(NACK)
	f.Add(ErrorFrame)
	f.Add(frameOf(f, "D5 03 32 01 06 07"))
	f.Add(append(hx(f, "55 55 00 00"), frameOf(f, "D5 4B 01 01 50 01 02 03 04 00 00 00 00 B3 81 A1 01 00")...))
	ext, _ := Encode(TFIChip, make([]byte, 260))
	f.Add(ext)
	f.Add(hx(f, "00 00 FF FF FF 01 0A F5"))
	f.Fuzz(func(t *testing.T, in []byte) {
		rest := in
		for steps := 0; len(rest) > 0; steps++ {
			if steps > len(in)+1 {
				t.Fatalf("Decode made no progress on % X", in)
			}
			fr, n, err := Decode(rest)
			if n < 0 || n > len(rest) {
				t.Fatalf("Decode consumed %d of %d", n, len(rest))
			}
			if err == nil {
				if fr.Kind == KindInfo {
					// A decoded frame re-encodes to bytes that decode the same.
					enc, eerr := Encode(fr.TFI, fr.Data)
					if eerr != nil {
						t.Fatalf("re-encode: %v", eerr)
					}
					g, _, gerr := Decode(enc)
					if gerr != nil || g.TFI != fr.TFI || !bytes.Equal(g.Data, fr.Data) {
						t.Fatalf("re-decode mismatch: %v", gerr)
					}
				}
			} else if errors.Is(err, ErrIncomplete) {
				break
			} else if n == 0 {
				t.Fatalf("error %v without progress", err)
			}
			rest = rest[n:]
		}
	})
}
