package isodep

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

func FuzzParseBlock(f *testing.F) {
	for _, tc := range blockTests {
		f.Add(h(tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		blk, err := ParseBlock(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidBlock) {
				t.Fatalf("error %v does not wrap ErrInvalidBlock", err)
			}
			return
		}
		// Every PCB bit is accounted for: encoding gives the input back.
		if enc := blk.Encode(); !bytes.Equal(enc, b) {
			t.Fatalf("Encode(ParseBlock(% X)) = % X", b, enc)
		}
		if blk.Num > 1 || (blk.Type == SWTX && (blk.WTXM() == 0 || len(blk.INF) != 1)) {
			t.Fatalf("bad block %+v", blk)
		}
	})
}

func FuzzParseATS(f *testing.F) {
	for _, tc := range atsTests {
		f.Add(h(tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseATS(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidATS) {
				t.Fatalf("error %v does not wrap ErrInvalidATS", err)
			}
			return
		}
		if int(b[0]) != len(b) {
			t.Fatalf("accepted TL %d for %d bytes", b[0], len(b))
		}
		if a.FSC < 16 || a.FSC > 256 || a.FWT <= 0 || a.FWT > FWTMax || a.SFGT < 0 || a.SFGT > FWTMax {
			t.Fatalf("out of range: %+v", a)
		}
		if len(a.Historical) > len(b)-2 && len(a.Historical) > 0 {
			t.Fatalf("%d historical bytes from %d", len(a.Historical), len(b))
		}
	})
}

func FuzzParseATQB(f *testing.F) {
	for _, tc := range atqbTests {
		f.Add(h(tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseATQB(b)
		valid := (len(b) == 12 || len(b) == 13) && b[0] == 0x50
		if (err == nil) != valid {
			t.Fatalf("ParseATQB(% X) error %v", b, err)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidATQB) {
				t.Fatalf("error %v does not wrap ErrInvalidATQB", err)
			}
			return
		}
		if a.FSC < 16 || a.FSC > 256 || a.FWT <= 0 || a.FWT > FWTMax || a.Extended != (len(b) == 13) {
			t.Fatalf("out of range: %+v", a)
		}
	})
}

// fuzzCard answers from a byte string: each answer starts with a control
// byte, FF = no response, FE = damaged, FD = fatal link error, otherwise
// the length of the frame that follows. When the bytes run out the card
// is silent.
type fuzzCard struct {
	data  []byte
	calls int
}

var errLink = errors.New("link down")

func (c *fuzzCard) Transceive(_ context.Context, frame []byte, timeout time.Duration) ([]byte, error) {
	c.calls++
	if len(frame) == 0 || timeout <= 0 || timeout > FWTMax+DeltaFWT {
		panic("bad frame or timeout from Conn")
	}
	if len(c.data) == 0 {
		return nil, ErrNoResponse
	}
	ctl := c.data[0]
	c.data = c.data[1:]
	switch ctl {
	case 0xFF:
		return nil, ErrNoResponse
	case 0xFE:
		return nil, ErrTransmission
	case 0xFD:
		return nil, errLink
	}
	n := min(int(ctl), len(c.data))
	out := c.data[:n:n]
	c.data = c.data[n:]
	return out, nil
}

// fuzzSeeds encodes card answers for fuzzCard.
func fuzzSeeds(answers ...[]byte) []byte {
	var out []byte
	for _, a := range answers {
		switch {
		case a == nil:
			out = append(out, 0xFF)
		case len(a) == 1 && a[0] == 0xFE:
			out = append(out, 0xFE)
		default:
			out = append(out, byte(len(a)))
			out = append(out, a...)
		}
	}
	return out
}

// FuzzConnTransmit feeds arbitrary card answers to Transmit, Present and
// Deselect: no panic, no endless loop (the number of exchanges is bounded
// by the input), results within bounds.
func FuzzConnTransmit(f *testing.F) {
	damagedAns := h("FE")
	f.Add(byte(0x08), byte(6), fuzzSeeds(h("02 90 00"), h("A3")))
	f.Add(byte(0x08), byte(6), fuzzSeeds(nil, h("02 90 00"), damagedAns, h("A3")))
	f.Add(byte(0x08), byte(6), fuzzSeeds(nil, h("A3"), h("02 90 00")))
	f.Add(byte(0x05), byte(150), fuzzSeeds(h("A2"), h("A3"), h("02 90 00")))
	f.Add(byte(0x15), byte(150), fuzzSeeds(h("AA 01"), h("AB 01"), h("0A 01 90 00"), h("BA 01")))
	f.Add(byte(0x08), byte(5), fuzzSeeds(cat(h("12"), seq(253)), cat(h("03"), seq(3), h("90 00")), h("A2")))
	f.Add(byte(0x08), byte(5), fuzzSeeds(h("F2 01"), h("F2 3F"), h("02 90 00"), h("C2")))
	f.Add(byte(0x48), byte(5), fuzzSeeds(h("22 90 00"), h("03 90 00")))
	f.Add(byte(0x00), byte(255), fuzzSeeds(h("12"), h("13"), h("12"), h("13")))
	f.Add(byte(0x28), byte(5), []byte{0xFD})
	f.Fuzz(func(t *testing.T, cfg, n byte, data []byte) {
		// cfg: b4..b1 FSC code, b5 CID 1, b7..b6 retries (0 = none).
		retries := int(cfg >> 6)
		opts := &Opts{Retries: retries, MaxResponse: 1024, MaxWTX: 8}
		if retries == 0 {
			opts.Retries = -1
		}
		p := Params{FSC: FrameSize(cfg & 0x0F), FWT: FrameWaitingTime(cfg & 0x0F)}
		if cfg&0x10 != 0 {
			p.CID, p.UseCID = 1, true
		}
		card := &fuzzCard{data: data}
		c, err := New(card, p, opts)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		resp, err := c.Transmit(ctx, seq(int(n)+1))
		if err == nil && len(resp) > opts.MaxResponse {
			t.Fatalf("%d-byte response beyond MaxResponse", len(resp))
		}
		if limit := len(data) + retries + 1; card.calls > limit {
			t.Fatalf("Transmit made %d exchanges for %d input bytes", card.calls, len(data))
		}
		calls := card.calls
		if _, err := c.Present(ctx); err != nil && errors.Is(err, ErrNoResponse) {
			t.Fatalf("Present reported silence as an error: %v", err)
		}
		if card.calls-calls > 3 {
			t.Fatalf("Present made %d exchanges", card.calls-calls)
		}
		_ = c.Deselect(ctx)
		_ = c.Stats()
	})
}
