package isodep

import (
	"fmt"
	"time"
)

// ATS is the answer of a Type A card to RATS (ISO/IEC 14443-4 §5.2):
// `TL T0 [TA(1)] [TB(1)] [TC(1)] historical bytes`, CRC_A stripped.
// Absent bytes take the defaults of §5.2: FSCI 2 (32 bytes), 106 kbit/s
// only, FWI 4, SFGI 0, CID supported and NAD not supported.
type ATS struct {
	FSCI byte // T0 b4..b1 (§5.2.3)
	FSC  int  // FrameSize(FSCI): the card's largest frame incl. PCB, CID, NAD, CRC

	// TA(1), bit rates (§5.2.4).
	TA          bool  // TA(1) present
	SameBitRate bool  // b8: the same divisor D both ways only
	DS          Rates // b7..b5: PICC to PCD (D = 8, 4, 2)
	DR          Rates // b3..b1: PCD to PICC (D = 8, 4, 2)

	// TB(1), times (§5.2.5).
	FWI  byte          // b8..b5, as received (default 4)
	FWT  time.Duration // FrameWaitingTime(FWI), FWI 15 read as 4
	SFGI byte          // b4..b1, as received (default 0)
	SFGT time.Duration // guard time after the ATS, 0 = none (SFGI 0 or 15)

	// TC(1), protocol options (§5.2.6).
	NADSupported bool // b1
	CIDSupported bool // b2

	Historical []byte // T1..Tk (§5.2.7), a copy
}

// ParseATS parses an ATS without its CRC. TL, the first byte, counts the
// whole ATS including itself and must equal len(b) (§5.2.2).
func ParseATS(b []byte) (ATS, error) {
	a := ATS{FSCI: 2, FWI: 4, CIDSupported: true} // §5.2 defaults
	if len(b) == 0 {
		return a, fmt.Errorf("%w: empty", ErrInvalidATS)
	}
	if int(b[0]) != len(b) {
		return a, fmt.Errorf("%w: TL %d, length %d", ErrInvalidATS, b[0], len(b))
	}
	if len(b) > 1 {
		t0 := b[1] // §5.2.3: b8 RFU (0), b7 TC, b6 TB, b5 TA, b4..b1 FSCI
		a.FSCI = t0 & 0x0F
		rest := b[2:]
		take := func(present bool, name string) (byte, bool, error) {
			if !present {
				return 0, false, nil
			}
			if len(rest) == 0 {
				return 0, false, fmt.Errorf("%w: T0 %02X announces %s, missing", ErrInvalidATS, t0, name)
			}
			v := rest[0]
			rest = rest[1:]
			return v, true, nil
		}
		ta, ok, err := take(t0&0x10 != 0, "TA(1)")
		if err != nil {
			return a, err
		}
		if ok {
			a.TA = true
			a.SameBitRate = ta&0x80 != 0
			if ta&0x08 == 0 { // §5.2.4: b4 set is RFU; then keep 106 kbit/s only
				a.DS = Rates(ta>>4) & 0x07
				a.DR = Rates(ta) & 0x07
			}
		}
		tb, ok, err := take(t0&0x20 != 0, "TB(1)")
		if err != nil {
			return a, err
		}
		if ok {
			a.FWI = tb >> 4
			a.SFGI = tb & 0x0F
		}
		tc, ok, err := take(t0&0x40 != 0, "TC(1)")
		if err != nil {
			return a, err
		}
		if ok { // §5.2.6: b8..b3 RFU
			a.NADSupported = tc&0x01 != 0
			a.CIDSupported = tc&0x02 != 0
		}
		if len(rest) > 0 {
			a.Historical = append([]byte(nil), rest...)
		}
	}
	a.FSC = FrameSize(a.FSCI)
	a.FWT = FrameWaitingTime(a.FWI)
	a.SFGT = startupGuardTime(a.SFGI)
	return a, nil
}

// ISO14443_4 reports whether a Type A SAK says the card supports ISO/IEC
// 14443-4: bit 6 (0x20) set (ISO/IEC 14443-3 clause 6, SAK). Check it before
// sending RATS.
func ISO14443_4(sak byte) bool { return sak&0x20 != 0 }
