package isodep

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kazashi/kazashi/drivers/iso7816"
)

// Frame waiting times used below (ISO/IEC 14443-4 §7.2), ΔFWT included.
var (
	wait4  = FrameWaitingTime(4) + DeltaFWT
	wait10 = FrameWaitingTime(10) + DeltaFWT
)

var (
	selectJPKI = h("00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01")
	selectEF   = h("00 A4 02 0C 02 00 06")
	readToken  = h("00 B0 00 00 20")
)

func transmit(t *testing.T, c *Conn, apdu []byte) []byte {
	t.Helper()
	resp, err := c.Transmit(context.Background(), apdu)
	if err != nil {
		t.Fatalf("Transmit: %v", err)
	}
	return resp
}

// Block numbers alternate from 0 (rule A) and follow the card's I-blocks
// (rule B); the card starts at 1 (rule C) and toggles on each I-block
// (rule D).
func TestTransmitBlockNumbers(t *testing.T) {
	token := []byte("JPKIAPICCTOKEN2                 ")
	s := newScript(t,
		ex(h("02 00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01"), h("02 90 00")).within(wait10),
		ex(h("03 00 A4 02 0C 02 00 06"), h("03 90 00")).within(wait10),
		ex(h("02 00 B0 00 00 20"), cat(h("02"), token, h("90 00"))).within(wait10),
	)
	c := conn(t, s, 256, 10, -1, nil)
	if got := transmit(t, c, selectJPKI); !bytes.Equal(got, h("90 00")) {
		t.Errorf("SELECT answer % X", got)
	}
	if got := transmit(t, c, selectEF); !bytes.Equal(got, h("90 00")) {
		t.Errorf("SELECT EF answer % X", got)
	}
	if got := transmit(t, c, readToken); !bytes.Equal(got, cat(token, h("90 00"))) {
		t.Errorf("READ BINARY answer % X", got)
	}
	want := Stats{BlocksSent: 3, BlocksReceived: 3}
	if st := c.Stats(); st != want {
		t.Errorf("Stats %+v, want %+v", st, want)
	}
}

// A card with CID: PCB b4 set and the CID byte after it (§7.1.1.2); the
// card may set power level bits b8..b7 of its CID byte (§7.4).
func TestTransmitWithCID(t *testing.T) {
	s := newScript(t,
		ex(h("0A 01 00 A4 02 0C 02 00 06"), h("0A 01 90 00")),
		ex(h("0B 01 00 A4 02 0C 02 00 06"), h("0B 41 6A 82")),
	)
	c := conn(t, s, 256, 4, 1, nil)
	transmit(t, c, selectEF)
	if got := transmit(t, c, selectEF); !bytes.Equal(got, h("6A 82")) {
		t.Errorf("answer % X", got)
	}
}

// A 148-byte command to a card with FSC 64: 64 - PCB - 2 CRC = 61 INF
// bytes per block; the card acknowledges each chained block with R(ACK)
// carrying the block's number (rules 2, 7, B).
func TestTransmitChainedCommand(t *testing.T) {
	apdu := cat(h("00 D6 00 00 8F"), seq(143))
	s := newScript(t,
		ex(cat(h("12"), apdu[:61]), h("A2")),
		ex(cat(h("13"), apdu[61:122]), h("A3")),
		ex(cat(h("02"), apdu[122:]), h("02 90 00")),
		ex(h("03 00 A4 02 0C 02 00 06"), h("03 90 00")),
	)
	c := conn(t, s, 64, 4, -1, nil)
	if got := transmit(t, c, apdu); !bytes.Equal(got, h("90 00")) {
		t.Errorf("answer % X", got)
	}
	transmit(t, c, selectEF)
	for i, f := range s.steps {
		if len(f.send)+2 > 64 {
			t.Errorf("frame %d: %d bytes with CRC exceed FSC 64", i, len(f.send)+2)
		}
	}
}

// With a CID the INF room shrinks by one byte: 60 per block.
func TestTransmitChainedCommandWithCID(t *testing.T) {
	apdu := cat(h("00 D6 00 00 8F"), seq(143))
	s := newScript(t,
		ex(cat(h("1A 01"), apdu[:60]), h("AA 01")),
		ex(cat(h("1B 01"), apdu[60:120]), h("AB 01")),
		ex(cat(h("0A 01"), apdu[120:]), h("0A 01 90 00")),
	)
	c := conn(t, s, 64, 4, 1, nil)
	transmit(t, c, apdu)
}

// A 258-byte response with FSD 256: the card sends 253 INF bytes (254-byte
// frame + 2 CRC = FSD) with the chaining bit, the reader asks for more
// with R(ACK) carrying its toggled number (rules 2, B), the card continues
// (rule 13).
func TestTransmitChainedResponse(t *testing.T) {
	data := seq(256)
	s := newScript(t,
		ex(h("02 00 B0 00 00 00"), cat(h("12"), data[:253])).within(wait10),
		ex(h("A3"), cat(h("03"), data[253:], h("90 00"))).within(wait10),
		ex(h("02 00 B0 01 00 00"), h("02 6B 00")),
	)
	c := conn(t, s, 256, 10, -1, nil)
	if got := transmit(t, c, h("00 B0 00 00 00")); !bytes.Equal(got, cat(data, h("90 00"))) {
		t.Errorf("answer (%d bytes) % X", len(got), got)
	}
	transmit(t, c, h("00 B0 01 00 00"))
	if st := c.Stats(); st.BlocksSent != 3 || st.BlocksReceived != 3 || st.Retransmissions != 0 {
		t.Errorf("Stats %+v", st)
	}
}

// The card's answer is lost: R(NAK) with the current number makes the
// card send its last block again (rules 4, 11).
func TestTransmitLostAnswer(t *testing.T) {
	s := newScript(t,
		lost(h("02 00 A4 02 0C 02 00 06")),
		ex(h("B2"), h("02 90 00")).within(wait4),
	)
	c := conn(t, s, 256, 4, -1, nil)
	transmit(t, c, selectEF)
	want := Stats{BlocksSent: 2, BlocksReceived: 1, Retransmissions: 1, Timeouts: 1}
	if st := c.Stats(); st != want {
		t.Errorf("Stats %+v, want %+v", st, want)
	}
}

// The I-block is lost: the card answers R(NAK) with R(ACK) carrying its
// own number (rule 12), the reader sends the I-block again (rule 6).
func TestTransmitLostIBlock(t *testing.T) {
	s := newScript(t,
		lost(h("02 00 A4 02 0C 02 00 06")),
		ex(h("B2"), h("A3")),
		ex(h("02 00 A4 02 0C 02 00 06"), h("02 90 00")),
	)
	c := conn(t, s, 256, 4, -1, nil)
	transmit(t, c, selectEF)
	if st := c.Stats(); st.Retransmissions != 2 {
		t.Errorf("Retransmissions %d, want 2", st.Retransmissions)
	}
}

// The card's R(ACK) during command chaining is lost: R(NAK) makes the
// card repeat it (rule 11).
func TestTransmitLostACKWhileChaining(t *testing.T) {
	apdu := cat(h("00 D6 00 00 50"), seq(80))
	s := newScript(t,
		lost(cat(h("12"), apdu[:61])),
		ex(h("B2"), h("A2")),
		ex(cat(h("03"), apdu[61:]), h("03 90 00")),
	)
	c := conn(t, s, 64, 4, -1, nil)
	transmit(t, c, apdu)
}

// While the card chains, recovery uses R(ACK), not R(NAK) (rule 5). A lost
// next block: the card got the R(ACK), sent its block, it was lost; the
// repeated R(ACK) now carries the card's number and it retransmits
// (rule 11). A damaged block is handled the same way.
func TestTransmitLostResponseToACK(t *testing.T) {
	data := seq(300)
	s := newScript(t,
		ex(h("02 00 B0 00 00 00"), cat(h("12"), data[:253])),
		lost(h("A3")),
		ex(h("A3"), cat(h("13"), data[253:280])),
		damaged(h("A2")),
		ex(h("A2"), cat(h("02"), data[280:], h("90 00"))),
	)
	c := conn(t, s, 256, 4, -1, nil)
	if got := transmit(t, c, h("00 B0 00 00 00")); !bytes.Equal(got, cat(data, h("90 00"))) {
		t.Errorf("answer % X", got)
	}
	want := Stats{BlocksSent: 5, BlocksReceived: 4, Retransmissions: 2, Timeouts: 1, Errors: 1}
	if st := c.Stats(); st != want {
		t.Errorf("Stats %+v, want %+v", st, want)
	}
}

// S(WTX): the reader answers with the same WTXM and gives the card
// WTXM × FWT (at most FWTMax) + ΔFWT for the next block only (§7.3).
func TestTransmitWTX(t *testing.T) {
	sign := cat(h("80 2A 00 80 33"), seq(51), h("00"))
	sig := seq(256)
	fwt := FrameWaitingTime(10)
	s := newScript(t,
		ex(cat(h("02"), sign), h("F2 01")).within(wait10),
		ex(h("F2 01"), h("F2 C3")).within(1*fwt+DeltaFWT), // power level bits b8..b7 are not WTXM
		ex(h("F2 03"), h("F2 3B")).within(3*fwt+DeltaFWT),
		ex(h("F2 3B"), h("F2 3F")).within(FWTMax+DeltaFWT),              // 59 × 309 ms > FWTMax
		ex(h("F2 3F"), cat(h("12"), sig[:253])).within(FWTMax+DeltaFWT), // RFU 63 read as 59
		ex(h("A3"), cat(h("03"), sig[253:], h("90 00"))).within(wait10),
	)
	c := conn(t, s, 256, 10, -1, nil)
	if got := transmit(t, c, sign); !bytes.Equal(got, cat(sig, h("90 00"))) {
		t.Errorf("answer % X", got)
	}
	if st := c.Stats(); st.WTX != 4 || st.Retransmissions != 0 {
		t.Errorf("Stats %+v", st)
	}
}

// With a short FWT the WTX wait is a plain product.
func TestTransmitWTXShortFWT(t *testing.T) {
	fwt := FrameWaitingTime(4)
	s := newScript(t,
		ex(h("0A 01 00 A4 02 0C 02 00 06"), h("FA 01 3B")),
		ex(h("FA 01 3B"), h("0A 01 90 00")).within(59*fwt+DeltaFWT),
	)
	c := conn(t, s, 256, 4, 1, nil)
	transmit(t, c, selectEF)
}

// The block after the S(WTX) response is lost: R(NAK) with the normal
// FWT, the card repeats its S(WTX) (rule 11), the reader answers again.
// S(WTX) may also come while the reader chains (rule 9).
func TestTransmitWTXLost(t *testing.T) {
	apdu := cat(h("00 D6 00 00 50"), seq(80))
	fwt := FrameWaitingTime(4)
	s := newScript(t,
		ex(cat(h("12"), apdu[:61]), h("F2 02")),
		ex(h("F2 02"), h("A2")).within(2*fwt+DeltaFWT),
		ex(cat(h("03"), apdu[61:]), h("F2 05")),
		lost(h("F2 05")).within(5*fwt+DeltaFWT),
		ex(h("B3"), h("F2 05")).within(wait4),
		ex(h("F2 05"), h("03 90 00")).within(5*fwt+DeltaFWT),
	)
	c := conn(t, s, 64, 4, -1, nil)
	transmit(t, c, apdu)
}

// No answer to the I-block and to 2 R(NAK)s: the card is gone.
func TestTransmitCardGone(t *testing.T) {
	s := newScript(t,
		lost(h("02 00 A4 02 0C 02 00 06")),
		lost(h("B2")),
		lost(h("B2")),
	)
	c := conn(t, s, 256, 4, -1, nil)
	_, err := c.Transmit(context.Background(), selectEF)
	if !errors.Is(err, iso7816.ErrCardLost) || !errors.Is(err, ErrNoResponse) {
		t.Fatalf("err %v, want ErrCardLost and ErrNoResponse", err)
	}
	if !strings.HasPrefix(err.Error(), "isodep: ") {
		t.Errorf("err %q lacks the package prefix", err)
	}
	// The session is over: no more frames, same cause.
	_, err = c.Transmit(context.Background(), selectEF)
	if !errors.Is(err, ErrClosed) || !errors.Is(err, iso7816.ErrCardLost) {
		t.Errorf("second Transmit: %v", err)
	}
	want := Stats{BlocksSent: 3, Retransmissions: 2, Timeouts: 3}
	if st := c.Stats(); st != want {
		t.Errorf("Stats %+v, want %+v", st, want)
	}
}

func TestTransmitRetriesOption(t *testing.T) {
	t.Run("none", func(t *testing.T) {
		s := newScript(t, lost(h("02 00 A4 02 0C 02 00 06")))
		c := conn(t, s, 256, 4, -1, &Opts{Retries: -1})
		if _, err := c.Transmit(context.Background(), selectEF); !errors.Is(err, iso7816.ErrCardLost) {
			t.Errorf("err %v", err)
		}
	})
	t.Run("four", func(t *testing.T) {
		s := newScript(t,
			lost(h("02 00 A4 02 0C 02 00 06")),
			lost(h("B2")), lost(h("B2")), lost(h("B2")),
			ex(h("B2"), h("02 90 00")),
		)
		c := conn(t, s, 256, 4, -1, &Opts{Retries: 4})
		transmit(t, c, selectEF)
	})
}

// Damaged answers that never heal are not "card gone".
func TestTransmitPersistentDamage(t *testing.T) {
	s := newScript(t,
		damaged(h("02 00 A4 02 0C 02 00 06")),
		damaged(h("B2")),
		damaged(h("B2")),
	)
	c := conn(t, s, 256, 4, -1, nil)
	_, err := c.Transmit(context.Background(), selectEF)
	if !errors.Is(err, ErrTransmission) || errors.Is(err, iso7816.ErrCardLost) {
		t.Errorf("err %v, want ErrTransmission only", err)
	}
}

// Malformed blocks count as invalid blocks (rule 4): R(NAK), then fail.
func TestTransmitInvalidBlock(t *testing.T) {
	t.Run("recovered", func(t *testing.T) {
		s := newScript(t,
			ex(h("02 00 A4 02 0C 02 00 06"), h("22 90 00")), // b6 set: RFU
			ex(h("B2"), h("0A 01 90 00")),                   // CID in a session without CID
			ex(h("B2"), cat(h("02"), seq(254))),             // 255 bytes: exceeds FSD
			ex(h("B2"), h("02 90 00")),
		)
		c := conn(t, s, 256, 4, -1, &Opts{Retries: 3})
		transmit(t, c, selectEF)
		if st := c.Stats(); st.Errors != 3 || st.BlocksReceived != 4 {
			t.Errorf("Stats %+v", st)
		}
	})
	t.Run("wrong CID", func(t *testing.T) {
		s := newScript(t,
			ex(h("0A 02 00 A4 02 0C 02 00 06"), h("0A 03 90 00")),
			ex(h("BA 02"), h("02 90 00")),       // CID missing
			ex(h("BA 02"), h("0E 02 05 90 00")), // NAD never used by us
		)
		c := conn(t, s, 256, 4, 2, nil)
		_, err := c.Transmit(context.Background(), selectEF)
		if !errors.Is(err, ErrInvalidBlock) || errors.Is(err, iso7816.ErrCardLost) {
			t.Errorf("err %v, want ErrInvalidBlock", err)
		}
	})
}

// Well-formed blocks that break the rules end the exchange at once.
func TestTransmitProtocolErrors(t *testing.T) {
	long := cat(h("00 D6 00 00 50"), seq(80))
	for _, tc := range []struct {
		name  string
		apdu  []byte
		steps []step
	}{
		{"I-block with the wrong number", selectEF, []step{
			ex(h("02 00 A4 02 0C 02 00 06"), h("03 90 00"))}},
		{"R(NAK) from the card", selectEF, []step{
			ex(h("02 00 A4 02 0C 02 00 06"), h("B2"))}},
		{"R(ACK) of an unchained block", selectEF, []step{
			ex(h("02 00 A4 02 0C 02 00 06"), h("A2"))}},
		{"S(DESELECT) from the card", selectEF, []step{
			ex(h("02 00 A4 02 0C 02 00 06"), h("C2"))}},
		{"S(PARAMETERS) from the card", selectEF, []step{
			ex(h("02 00 A4 02 0C 02 00 06"), h("F0 A0 00"))}},
		{"I-block while the reader chains", long, []step{
			ex(cat(h("12"), long[:61]), h("02 67 00"))}},
		{"chained I-block with the wrong number", selectEF, []step{
			ex(h("02 00 A4 02 0C 02 00 06"), h("12 01")),
			ex(h("A3"), h("02 02"))}},
		{"R(ACK) while the card chains", selectEF, []step{
			ex(h("02 00 A4 02 0C 02 00 06"), h("12 01")),
			ex(h("A3"), h("A3"))}},
		{"R(ACK) with the other number forever (rule 6)", selectEF, []step{
			ex(h("02 00 A4 02 0C 02 00 06"), h("A3")),
			ex(h("02 00 A4 02 0C 02 00 06"), h("A3")),
			ex(h("02 00 A4 02 0C 02 00 06"), h("A3"))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScript(t, tc.steps...)
			c := conn(t, s, 64, 4, -1, nil)
			_, err := c.Transmit(context.Background(), tc.apdu)
			if !errors.Is(err, ErrProtocol) {
				t.Errorf("err %v, want ErrProtocol", err)
			}
			if _, err := c.Transmit(context.Background(), selectEF); !errors.Is(err, ErrClosed) {
				t.Errorf("after failure: %v, want ErrClosed", err)
			}
		})
	}
}

// A card cannot chain forever nor ask for time forever.
func TestTransmitBounds(t *testing.T) {
	t.Run("MaxResponse", func(t *testing.T) {
		s := newScript(t,
			ex(h("02 00 B0 00 00 00"), cat(h("12"), seq(200))),
			ex(h("A3"), cat(h("13"), seq(200))),
		)
		c := conn(t, s, 256, 4, -1, &Opts{MaxResponse: 300})
		if _, err := c.Transmit(context.Background(), h("00 B0 00 00 00")); !errors.Is(err, ErrProtocol) {
			t.Errorf("err %v", err)
		}
	})
	t.Run("empty chained blocks", func(t *testing.T) {
		s := newScript(t,
			ex(h("02 00 B0 00 00 00"), h("12")),
			ex(h("A3"), h("13")),
			ex(h("A2"), h("12")),
		)
		c := conn(t, s, 256, 4, -1, &Opts{MaxResponse: 2})
		if _, err := c.Transmit(context.Background(), h("00 B0 00 00 00")); !errors.Is(err, ErrProtocol) {
			t.Errorf("err %v", err)
		}
	})
	t.Run("MaxWTX", func(t *testing.T) {
		s := newScript(t,
			ex(h("02 00 A4 02 0C 02 00 06"), h("F2 01")),
			ex(h("F2 01"), h("F2 01")),
			ex(h("F2 01"), h("F2 01")),
		)
		c := conn(t, s, 256, 4, -1, &Opts{MaxWTX: 2})
		if _, err := c.Transmit(context.Background(), selectEF); !errors.Is(err, ErrProtocol) {
			t.Errorf("err %v", err)
		}
	})
}

type funcTransceiver func(ctx context.Context, frame []byte, timeout time.Duration) ([]byte, error)

func (f funcTransceiver) Transceive(ctx context.Context, frame []byte, timeout time.Duration) ([]byte, error) {
	return f(ctx, frame, timeout)
}

func TestTransmitFatalErrors(t *testing.T) {
	t.Run("cancelled before", func(t *testing.T) {
		s := newScript(t)
		c := conn(t, s, 256, 4, -1, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := c.Transmit(ctx, selectEF); !errors.Is(err, context.Canceled) {
			t.Errorf("err %v", err)
		}
	})
	t.Run("cancelled during", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		tr := funcTransceiver(func(ctx context.Context, _ []byte, _ time.Duration) ([]byte, error) {
			calls++
			cancel()
			return nil, errors.Join(ErrNoResponse, ctx.Err())
		})
		c := conn(t, tr, 256, 4, -1, nil)
		if _, err := c.Transmit(ctx, selectEF); !errors.Is(err, context.Canceled) || errors.Is(err, iso7816.ErrCardLost) {
			t.Errorf("err %v", err)
		}
		if calls != 1 {
			t.Errorf("%d calls, want 1 (no retries after cancel)", calls)
		}
	})
	for _, cause := range []error{errors.New("host link down"), iso7816.ErrCardLost} {
		t.Run(cause.Error(), func(t *testing.T) {
			calls := 0
			tr := funcTransceiver(func(context.Context, []byte, time.Duration) ([]byte, error) {
				calls++
				return nil, cause
			})
			c := conn(t, tr, 256, 4, -1, nil)
			if _, err := c.Transmit(context.Background(), selectEF); !errors.Is(err, cause) {
				t.Errorf("err %v", err)
			}
			if calls != 1 {
				t.Errorf("%d calls, want 1", calls)
			}
		})
	}
	t.Run("empty APDU", func(t *testing.T) {
		c := conn(t, newScript(t), 256, 4, -1, nil)
		if _, err := c.Transmit(context.Background(), nil); err == nil {
			t.Error("no error")
		}
	})
}

func TestMargin(t *testing.T) {
	const margin = 20 * time.Millisecond
	s := newScript(t,
		ex(h("02 00 A4 02 0C 02 00 06"), h("F2 02")).within(wait4+margin),
		ex(h("F2 02"), h("02 90 00")).within(2*FrameWaitingTime(4)+DeltaFWT+margin),
	)
	c := conn(t, s, 256, 4, -1, &Opts{Margin: margin})
	transmit(t, c, selectEF)
}

// Presence check: R(NAK) with the current number (rule 12: the card
// answers R(ACK) with its own).
func TestPresent(t *testing.T) {
	ctx := context.Background()
	t.Run("present", func(t *testing.T) {
		s := newScript(t,
			ex(h("B2"), h("A3")).within(wait4),
			ex(h("02 00 A4 02 0C 02 00 06"), h("02 90 00")),
			ex(h("B3"), h("A2")),
		)
		c := conn(t, s, 256, 4, -1, nil)
		for i, apdu := range [][]byte{nil, selectEF, nil} {
			if apdu != nil {
				transmit(t, c, apdu)
				continue
			}
			if ok, err := c.Present(ctx); !ok || err != nil {
				t.Errorf("Present #%d = %v, %v", i, ok, err)
			}
		}
	})
	t.Run("retransmission counts", func(t *testing.T) {
		s := newScript(t, ex(h("BA 01"), h("0A 01 90 00"))) // rule 11
		c := conn(t, s, 256, 4, 1, nil)
		if ok, err := c.Present(ctx); !ok || err != nil {
			t.Errorf("Present = %v, %v", ok, err)
		}
	})
	t.Run("gone", func(t *testing.T) {
		s := newScript(t, lost(h("B2")))
		c := conn(t, s, 256, 4, -1, nil)
		if ok, err := c.Present(ctx); ok || err != nil {
			t.Errorf("Present = %v, %v; want false, nil", ok, err)
		}
	})
	t.Run("retried", func(t *testing.T) {
		s := newScript(t, damaged(h("B2")), ex(h("B2"), h("22 34")), ex(h("B2"), h("A3")))
		c := conn(t, s, 256, 4, -1, nil)
		if ok, err := c.Present(ctx); !ok || err != nil {
			t.Errorf("Present = %v, %v", ok, err)
		}
	})
	t.Run("retried then gone", func(t *testing.T) {
		s := newScript(t, damaged(h("B2")), lost(h("B2")))
		c := conn(t, s, 256, 4, -1, nil)
		if ok, err := c.Present(ctx); ok || err != nil {
			t.Errorf("Present = %v, %v", ok, err)
		}
	})
	t.Run("always damaged", func(t *testing.T) {
		s := newScript(t, damaged(h("B2")), damaged(h("B2")), damaged(h("B2")))
		c := conn(t, s, 256, 4, -1, nil)
		if ok, err := c.Present(ctx); ok || !errors.Is(err, ErrTransmission) {
			t.Errorf("Present = %v, %v", ok, err)
		}
	})
}

func TestDeselect(t *testing.T) {
	ctx := context.Background()
	t.Run("conn", func(t *testing.T) {
		s := newScript(t, ex(h("C2"), h("C2")).within(FWTDeselect+DeltaFWT))
		c := conn(t, s, 256, 4, -1, nil)
		if err := c.Deselect(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Deselect(ctx); err != nil {
			t.Errorf("second Deselect: %v", err)
		}
		if _, err := c.Transmit(ctx, selectEF); !errors.Is(err, ErrClosed) {
			t.Errorf("Transmit after Deselect: %v", err)
		}
		if _, err := c.Present(ctx); !errors.Is(err, ErrClosed) {
			t.Errorf("Present after Deselect: %v", err)
		}
	})
	t.Run("conn with CID, retried", func(t *testing.T) {
		s := newScript(t, lost(h("CA 03")), ex(h("CA 03"), h("CA 43")))
		c := conn(t, s, 256, 4, 3, nil)
		if err := c.Deselect(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("firmware CID 1", func(t *testing.T) {
		s := newScript(t, ex(h("CA 01"), h("CA 01")))
		if err := DeselectCID(ctx, s, 1); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("CID 0", func(t *testing.T) {
		s := newScript(t, ex(h("C2"), h("C2")))
		if err := DeselectCID(ctx, s, 0); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("wrong echo", func(t *testing.T) {
		s := newScript(t, ex(h("CA 01"), h("CA 02")), ex(h("CA 01"), h("C2")), ex(h("CA 01"), h("A2")))
		if err := DeselectCID(ctx, s, 1); !errors.Is(err, ErrInvalidBlock) {
			t.Errorf("err %v", err)
		}
	})
	t.Run("no card", func(t *testing.T) {
		s := newScript(t, lost(h("CA 01")), lost(h("CA 01")), lost(h("CA 01")))
		if err := DeselectCID(ctx, s, 1); !errors.Is(err, ErrNoResponse) {
			t.Errorf("err %v", err)
		}
	})
	t.Run("bad CID", func(t *testing.T) {
		if err := DeselectCID(ctx, newScript(t), 15); err == nil {
			t.Error("no error for CID 15")
		}
	})
}

// The logger sees PCB bytes and lengths, never APDU contents.
func TestLoggingHidesContents(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	verify := h("00 20 00 80 04 39 38 37 36") // VERIFY with PIN "9876"
	s := newScript(t, ex(cat(h("02"), verify), h("02 90 00")))
	c := conn(t, s, 256, 4, -1, &Opts{Logger: l})
	transmit(t, c, verify)
	out := buf.String()
	if !strings.Contains(out, "pcb=02") || !strings.Contains(out, "len=10") {
		t.Errorf("log lacks PCB and length:\n%s", out)
	}
	for _, leak := range []string{"9876", "39383736", "39 38 37 36"} {
		if strings.Contains(out, leak) {
			t.Errorf("log leaks APDU contents %q:\n%s", leak, out)
		}
	}
}

func TestNewParams(t *testing.T) {
	c, err := New(newScript(t), Params{FSC: 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Params(); p.FSC != 16 || p.FWT != FrameWaitingTime(4) {
		t.Errorf("Params %+v", p)
	}
	if got := c.String(); got != "isodep.Conn{FSC 16, FWT 4.833ms, CID none}" {
		t.Errorf("String %q", got)
	}
	if _, err := New(newScript(t), Params{CID: 15, UseCID: true}, nil); err == nil {
		t.Error("CID 15 accepted")
	}
	if _, err := New(nil, Params{}, nil); err == nil {
		t.Error("nil Transceiver accepted")
	}
}
