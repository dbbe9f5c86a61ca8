package isodep

import (
	"errors"
	"time"
)

// Sentinel errors. Errors returned by this package are prefixed "isodep: "
// and wrap one of these (or iso7816.ErrCardLost, or the Transceiver's
// error) so callers can branch with errors.Is.
var (
	// ErrNoResponse is wrapped by a Transceiver when nothing came back
	// within the timeout (PN532 status 01).
	ErrNoResponse = errors.New("isodep: no response")
	// ErrTransmission is wrapped by a Transceiver when an answer came but
	// was damaged: CRC, parity or framing error (PN532 status 02, 03, 0B).
	ErrTransmission = errors.New("isodep: transmission error")
	// ErrInvalidBlock reports a frame that is not a well-formed ISO-DEP
	// block (RFU PCB coding, missing bytes, unexpected CID or NAD).
	ErrInvalidBlock = errors.New("isodep: invalid block")
	// ErrInvalidATQB reports an ATQB that cannot be parsed.
	ErrInvalidATQB = errors.New("isodep: invalid ATQB")
	// ErrInvalidATS reports an ATS that cannot be parsed.
	ErrInvalidATS = errors.New("isodep: invalid ATS")
	// ErrProtocol reports a card that broke the block handling rules of
	// ISO/IEC 14443-4 §7.5 with a well-formed block (wrong block number,
	// unexpected block type, a chain longer than Opts.MaxResponse).
	ErrProtocol = errors.New("isodep: protocol error")
	// ErrNotISODEP reports a card that does not support ISO/IEC 14443-4
	// (ATQB Protocol_Type, SAK bit 6).
	ErrNotISODEP = errors.New("isodep: card does not support ISO/IEC 14443-4")
	// ErrClosed is returned by a Conn after Deselect or after an exchange
	// failed in a way that leaves the block numbers out of step.
	ErrClosed = errors.New("isodep: session closed")
)

// fc is the carrier frequency, 13.56 MHz (ISO/IEC 14443-2 §6.1).
const fc = 13_560_000

// etus converts a number of carrier periods (1/fc) to a duration, rounded
// up so that a timeout never undercuts the standard.
func etus(n int64) time.Duration {
	return time.Duration((n*int64(time.Second) + fc - 1) / fc)
}

// Timing constants.
var (
	// DeltaFWT is the PCD's tolerance added to every frame waiting time:
	// ΔFWT = 49152/fc ≈ 3.6 ms (ISO/IEC 14443-3 Type B FWT tolerance, used
	// by ISO/IEC 14443-4 §7.2 and by EMV for both types).
	DeltaFWT = etus(49152)
	// FWTMax is the largest frame waiting time, FWI 14: ≈ 4949 ms. ISO/IEC
	// 14443-4 §7.3: when FWT × WTXM exceeds it, FWTMax is used.
	FWTMax = FrameWaitingTime(14)
	// FWTActivation bounds the wait for the ATS after RATS: 65536/fc
	// ≈ 4.8 ms (ISO/IEC 14443-4:2008 §5.5, activation frame waiting time).
	FWTActivation = etus(65536)
	// FWTDeselect bounds the wait for the S(DESELECT) response: 65536/fc
	// ≈ 4.8 ms (ISO/IEC 14443-4:2008 clause 8, deactivation frame waiting
	// time).
	FWTDeselect = etus(65536)
	// FWTATQB bounds the wait for the ATQB after REQB/WUPB: 7680/fc
	// ≈ 566 µs (ISO/IEC 14443-3:2011 clause 7, frame waiting time of the
	// ATQB; EMV uses the same value).
	FWTATQB = etus(7680)
)

// FSD is the largest frame, in bytes including PCB, CID, NAD and the two
// CRC bytes, this package accepts from a card: 256 (FSDI 8; ISO/IEC
// 14443-4 §5.1, ISO/IEC 14443-3 §7.10). The PN532's InCommunicateThru
// carries the 254 bytes without CRC in one frame.
const FSD = 256

// fsdi is the code of FSD for ATTRIB Param 2 and RATS (ISO/IEC 14443-3
// §7.10, ISO/IEC 14443-4 §5.1).
const fsdi = 8

// FrameSize converts an FSCI/FSDI (Type A) or Max_Frame_Size (Type B)
// code to bytes: 16, 24, 32, 40, 48, 64, 96, 128, 256 (ISO/IEC 14443-4
// §5.2.3, ISO/IEC 14443-3 §7.9.4). Codes above 8 are RFU in ISO/IEC
// 14443-3:2011 and 14443-4:2008, where a PCD reads them as 256 (the 2016
// edition gave 9–C the sizes 512–4096, more than this package's FSD and
// the PN532 can use anyway), so every code above 8 yields 256.
func FrameSize(code byte) int {
	sizes := [...]int{16, 24, 32, 40, 48, 64, 96, 128, 256}
	if int(code) >= len(sizes) {
		return 256
	}
	return sizes[code]
}

// FrameWaitingTime converts an FWI (or SFGI) to its time: (256 × 16 / fc) ×
// 2^FWI = (4096 << FWI) / 13.56 MHz, from ≈ 302 µs (0) to ≈ 4949 ms (14)
// (ISO/IEC 14443-4 §7.2, ISO/IEC 14443-3 §7.9.4). FWI 15 is RFU and read
// as 4 (ISO/IEC 14443-4 §5.2.5); larger values are treated the same way.
func FrameWaitingTime(fwi byte) time.Duration {
	if fwi > 14 {
		fwi = 4
	}
	return etus(4096 << fwi)
}

// startupGuardTime converts an SFGI to the SFGT the PCD waits after the
// ATS or the ATTRIB answer before its first block: 0 = none, 1–14 =
// (256 × 16 / fc) × 2^SFGI, 15 = RFU, read as 0 (ISO/IEC 14443-4 §5.2.5,
// ISO/IEC 14443-3:2011 §7.9.4, extended ATQB).
func startupGuardTime(sfgi byte) time.Duration {
	if sfgi == 0 || sfgi > 14 {
		return 0
	}
	return FrameWaitingTime(sfgi)
}

// Rates is a set of bit rates above 106 kbit/s one direction supports (the
// 106 kbit/s rate is always supported).
type Rates uint8

// Bit rates in a Rates set, numbered like the divisors D = 2, 4, 8.
const (
	Rate212 Rates = 1 << iota // fc/64, D = 2
	Rate424                   // fc/32, D = 4
	Rate847                   // fc/16, D = 8
)

// Kbps lists the rates in the set in kbit/s, always starting with 106.
func (r Rates) Kbps() []int {
	out := []int{106}
	for i, k := range [...]int{212, 424, 847} {
		if r&(1<<i) != 0 {
			out = append(out, k)
		}
	}
	return out
}
