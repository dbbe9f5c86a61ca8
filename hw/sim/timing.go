package sim

import (
	"sync"
	"time"
)

// The timing model gives tests and benchmarks the wall time a real reader
// would take, without sleeping: every link transfer and every RF frame adds
// its modelled duration to a Meter.

// Carrier and bit timing of ISO/IEC 14443 at 106 kbit/s.
const (
	// fc is the carrier frequency (ISO/IEC 14443-2 §6.1).
	fc = 13_560_000
	// etu106 is one elementary time unit at 106 kbit/s: 128/fc ≈ 9.44 µs
	// (ISO/IEC 14443-2 §8.1.1, §9.1.1).
	etu106 = time.Duration(128 * int64(time.Second) / fc)
)

// RFFrameTypeB is the air time of one Type B frame of n bytes (CRC_B
// included) at 106 kbit/s: SOF 10–11 etu low + 2–3 etu high, each character
// 10 etu (start bit, 8 data bits, stop bit; extra guard time EGT 0 taken as
// its minimum), EOF 10–11 etu (ISO/IEC 14443-3 §7.1).
func RFFrameTypeB(n int) time.Duration {
	const sof, eof = 12, 10
	return time.Duration(sof+10*n+eof) * etu106
}

// RFFrameTypeA is the air time of one Type A standard frame of n bytes
// (CRC_A included) at 106 kbit/s: start of communication (1 bit), 9 bits
// per byte (8 data bits and odd parity), end of communication (1 bit)
// (ISO/IEC 14443-3 §6.2.3).
func RFFrameTypeA(n int) time.Duration {
	return time.Duration(1+9*n+1) * etu106
}

// Turnaround times between frames at 106 kbit/s, taken at their minimum:
// Type B TR0 (PICC waits ≥ 64/fs after the PCD's EOF, fs = fc/16 = 847.5
// kHz) plus TR1 (the PICC's unmodulated subcarrier before SOF, ≥ 80/fs)
// (ISO/IEC 14443-3 §7.1.6, §7.1.7: TR0min 1024/fc, TR1min 1280/fc); the
// PCD's guard before its next frame (SFGT is 0 when SFGI is 0) is ignored.
// Type A frame delay time PCD→PICC is 1172/fc for the last bit 1
// (ISO/IEC 14443-3 §6.2.1.1).
const (
	turnaroundB = time.Duration((1024 + 1280) * int64(time.Second) / fc)
	turnaroundA = time.Duration(1172 * int64(time.Second) / fc)
)

// RFRoundTrip is the air time of one exchange: the reader's frame of out
// bytes, the turnaround, the card's answer of in bytes (both with CRC), and
// the card's processing time proc. typeA selects Type A framing.
func RFRoundTrip(typeA bool, out, in int, proc time.Duration) time.Duration {
	if typeA {
		return RFFrameTypeA(out) + turnaroundA + proc + RFFrameTypeA(in)
	}
	return RFFrameTypeB(out) + turnaroundB + proc + RFFrameTypeB(in)
}

// UARTByteTime is the time of one 8N1 character (10 bits) at baud.
func UARTByteTime(baud int) time.Duration {
	return time.Duration(10 * int64(time.Second) / int64(baud))
}

// SPIByteTime is the time of one byte at clock hz (8 clock cycles; the
// controller's gaps between bytes are ignored).
func SPIByteTime(hz int) time.Duration {
	return time.Duration(8 * int64(time.Second) / int64(hz))
}

// I2CByteTime is the time of one byte at clock hz: 8 data bits plus the
// acknowledge bit.
func I2CByteTime(hz int) time.Duration {
	return time.Duration(9 * int64(time.Second) / int64(hz))
}

// Metrics is what a Meter counted. Not modelled, so missing from every
// total: the chip firmware's own time per command (UM0701-02 gives no
// figure), the host's scheduling, and the wait between a frame being
// ready and a polling host's next status read (up to one poll interval
// per frame on SPI and I2C without the IRQ line).
type Metrics struct {
	// APDUs is the number of command APDUs the card answered.
	APDUs int
	// LinkBytes counts bytes on the host link in both directions,
	// including bus framing (SPI prefixes and status polls, I2C address
	// and ready bytes, the HSU wake-up).
	LinkBytes int
	// LinkTime is the modelled time those bytes took on the link.
	LinkTime time.Duration
	// RFRoundTrips counts reader frames answered or timed out on RF.
	RFRoundTrips int
	// RFBytes counts bytes on RF in both directions, CRC included.
	RFBytes int
	// RFTime is the modelled RF time: frames, turnarounds, card
	// processing, waiting times and timeouts.
	RFTime time.Duration
}

// Total is the modelled wall time: link and RF time do not overlap on a
// PN532 (it answers a command after its RF exchange is done).
func (m Metrics) Total() time.Duration { return m.LinkTime + m.RFTime }

// Meter accumulates Metrics; its methods are safe for concurrent use. A
// nil *Meter counts nothing.
type Meter struct {
	mu sync.Mutex
	m  Metrics
}

// Link adds n bytes that took d on the host link.
func (m *Meter) Link(n int, d time.Duration) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.m.LinkBytes += n
	m.m.LinkTime += d
	m.mu.Unlock()
}

// RF adds one round trip of out+in bytes that took d.
func (m *Meter) RF(out, in int, d time.Duration) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.m.RFRoundTrips++
	m.m.RFBytes += out + in
	m.m.RFTime += d
	m.mu.Unlock()
}

// Wait adds RF time without frames (a timeout, a waiting-time extension).
func (m *Meter) Wait(d time.Duration) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.m.RFTime += d
	m.mu.Unlock()
}

// APDU counts one APDU answered by the card.
func (m *Meter) APDU() {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.m.APDUs++
	m.mu.Unlock()
}

// Snapshot returns what was counted so far.
func (m *Meter) Snapshot() Metrics {
	if m == nil {
		return Metrics{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m
}

// Reset clears the counters.
func (m *Meter) Reset() {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.m = Metrics{}
	m.mu.Unlock()
}
