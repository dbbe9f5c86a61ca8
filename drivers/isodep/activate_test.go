package isodep

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// The ATTRIB of protocols.md: `1D PUPI 00 08 01 00` for FSD 256 and CID 0.
func TestActivateB(t *testing.T) {
	s := newScript(t,
		ex(h("05 00 08"), h("50 12 34 56 78 00 00 00 00 B3 81 A1")).within(FWTATQB+DeltaFWT),
		ex(h("1D 12 34 56 78 00 08 01 00"), h("00")).within(wait10),
		ex(h("02 00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01"), h("02 90 00")).within(wait10),
	)
	c, atqb, err := ActivateB(context.Background(), s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if atqb.FSC != 256 || atqb.FWI != 10 || !atqb.CIDSupported {
		t.Errorf("ATQB %+v", atqb)
	}
	if p := c.Params(); p != (Params{FSC: 256, FWT: FrameWaitingTime(10)}) {
		t.Errorf("Params %+v", p)
	}
	transmit(t, c, selectJPKI)
}

// With Opts.CID 1 and a card that supports CID, every block carries it.
func TestActivateBWithCID(t *testing.T) {
	s := newScript(t,
		ex(h("05 00 00"), h("50 12 34 56 78 00 00 00 00 00 81 41")),
		ex(h("1D 12 34 56 78 00 08 01 01"), h("31")), // MBLI 3, CID 1
		ex(h("0A 01 00 A4 02 0C 02 00 06"), h("0A 01 90 00")),
		ex(h("BB 01"), h("AA 01")),
		ex(h("CA 01"), h("CA 01")),
	)
	ctx := context.Background()
	c, _, err := ActivateB(ctx, s, &Opts{CID: 1, REQB: true})
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Params(); !p.UseCID || p.CID != 1 || p.MBLI != 3 {
		t.Errorf("Params %+v", p)
	}
	transmit(t, c, selectEF)
	if ok, err := c.Present(ctx); !ok || err != nil {
		t.Errorf("Present %v %v", ok, err)
	}
	if err := c.Deselect(ctx); err != nil {
		t.Error(err)
	}
}

// A card without CID support (FO b1 = 0) gets CID 0 whatever Opts says.
func TestActivateBNoCIDSupport(t *testing.T) {
	s := newScript(t,
		ex(h("05 3F 08"), h("50 12 34 56 78 3F 00 00 00 00 51 40")),
		ex(h("1D 12 34 56 78 00 08 01 00"), h("00")).within(wait4),
		ex(cat(h("12"), seq(61)), h("A2")),
		ex(cat(h("03"), seq(70)[61:]), h("03 90 00")),
	)
	c, _, err := ActivateB(context.Background(), s, &Opts{CID: 5, AFI: 0x3F})
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Params(); p.UseCID || p.FSC != 64 {
		t.Errorf("Params %+v", p)
	}
	transmit(t, c, seq(70))
}

// The PN532 firmware leaves the card active with CID 1: deselect it, then
// WUPB wakes it from HALT.
func TestDeselectThenActivateB(t *testing.T) {
	s := newScript(t,
		ex(h("CA 01"), h("CA 01")),
		ex(h("05 00 08"), h("50 12 34 56 78 00 00 00 00 B3 81 A1")),
		ex(h("1D 12 34 56 78 00 08 01 00"), h("00")),
	)
	ctx := context.Background()
	if err := DeselectCID(ctx, s, 1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ActivateB(ctx, s, nil); err != nil {
		t.Fatal(err)
	}
}

func TestActivateBSFGT(t *testing.T) {
	s := newScript(t,
		ex(h("05 00 08"), h("50 12 34 56 78 00 00 00 00 00 81 71 30")),
		ex(h("1D 12 34 56 78 00 08 01 00"), h("00")),
	)
	var slept []time.Duration
	o := &Opts{sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }}
	if _, _, err := ActivateB(context.Background(), s, o); err != nil {
		t.Fatal(err)
	}
	if len(slept) != 1 || slept[0] != FrameWaitingTime(3) {
		t.Errorf("slept %v, want [SFGT(3)]", slept)
	}
}

func TestActivateBErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		steps []step
		want  error
	}{
		{"no card", []step{lost(h("05 00 08"))}, ErrNoResponse},
		{"bad ATQB", []step{ex(h("05 00 08"), h("50 12 34"))}, ErrInvalidATQB},
		{"not ISO-DEP", []step{ex(h("05 00 08"), h("50 12 34 56 78 00 00 00 00 00 80 A1"))}, ErrNotISODEP},
		{"ATTRIB lost", []step{
			ex(h("05 00 08"), h("50 12 34 56 78 00 00 00 00 00 81 A1")),
			lost(h("1D 12 34 56 78 00 08 01 00"))}, ErrNoResponse},
		{"ATTRIB empty answer", []step{
			ex(h("05 00 08"), h("50 12 34 56 78 00 00 00 00 00 81 A1")),
			ex(h("1D 12 34 56 78 00 08 01 00"), nil)}, ErrProtocol},
		{"ATTRIB wrong CID", []step{
			ex(h("05 00 08"), h("50 12 34 56 78 00 00 00 00 00 81 A1")),
			ex(h("1D 12 34 56 78 00 08 01 00"), h("01"))}, ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ActivateB(ctx, newScript(t, tc.steps...), nil)
			if !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
		})
	}
	if _, _, err := ActivateB(ctx, newScript(t), &Opts{CID: 15}); err == nil {
		t.Error("CID 15 accepted")
	}
}

func TestActivateA(t *testing.T) {
	s := newScript(t,
		ex(h("E0 80"), h("05 78 80 70 02")).within(FWTActivation+DeltaFWT),
		ex(h("02 00 A4 04 00 07 D2 76 00 00 85 01 01 00"), h("02 90 00")).within(FrameWaitingTime(7)+DeltaFWT),
	)
	c, ats, err := ActivateA(context.Background(), s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ats.FSC != 256 || ats.FWI != 7 {
		t.Errorf("ATS %+v", ats)
	}
	if got := transmit(t, c, h("00 A4 04 00 07 D2 76 00 00 85 01 01 00")); !bytes.Equal(got, h("90 00")) {
		t.Errorf("answer % X", got)
	}
}

func TestActivateAWithCID(t *testing.T) {
	s := newScript(t,
		ex(h("E0 82"), h("05 78 80 72 02")), // SFGI 2
		ex(h("0A 02 00 A4 02 0C 02 E1 03"), h("0A 02 90 00")),
	)
	var slept []time.Duration
	o := &Opts{CID: 2, sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }}
	c, _, err := ActivateA(context.Background(), s, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(slept) != 1 || slept[0] != FrameWaitingTime(2) {
		t.Errorf("slept %v", slept)
	}
	transmit(t, c, h("00 A4 02 0C 02 E1 03"))
}

// A card whose TC(1) denies CID support ignores the CID of RATS.
func TestActivateANoCID(t *testing.T) {
	s := newScript(t,
		ex(h("E0 83"), h("03 45 00")), // FSCI 5, TC 00
		ex(h("02 00 A4 02 0C 02 E1 03"), h("02 90 00")),
	)
	c, _, err := ActivateA(context.Background(), s, &Opts{CID: 3, sleep: noSleep})
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Params(); p.UseCID || p.FSC != 64 {
		t.Errorf("Params %+v", p)
	}
	transmit(t, c, h("00 A4 02 0C 02 E1 03"))
}

func TestActivateAErrors(t *testing.T) {
	ctx := context.Background()
	if _, _, err := ActivateA(ctx, newScript(t, lost(h("E0 80"))), nil); !errors.Is(err, ErrNoResponse) {
		t.Errorf("no answer: %v", err)
	}
	if _, _, err := ActivateA(ctx, newScript(t, ex(h("E0 80"), h("05 78"))), nil); !errors.Is(err, ErrInvalidATS) {
		t.Errorf("bad ATS: %v", err)
	}
	if _, _, err := ActivateA(ctx, newScript(t), &Opts{CID: 15}); err == nil {
		t.Error("CID 15 accepted")
	}
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	s := newScript(t, ex(h("E0 80"), h("03 20 72")))
	if _, _, err := ActivateA(ctx2, s, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("SFGT wait not cancelled: %v", err)
	}
}
