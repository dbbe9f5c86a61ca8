// Package pn532 drives an NXP PN532 NFC frontend over any host link.
//
// The package knows the PN532 host-controller frame protocol (normal,
// extended, ACK, NACK and error frames), a command engine that runs
// command → ACK → response with deadlines and abort, and the initiator
// commands a reader needs (Type B polling, InDataExchange with chaining).
// It opens no device: a Transport carries frames over UART, SPI or I2C.
package pn532

import (
	"errors"
	"fmt"
)

// Frame identifiers (TFI).
const (
	TFIHost byte = 0xD4 // host → PN532
	TFIChip byte = 0xD5 // PN532 → host
	tfiErr  byte = 0x7F // application-level error frame
)

// MaxFrameData is the largest number of bytes after the TFI in one frame
// (265 bytes including the TFI, UM0701-02 §6.2.1.2).
const MaxFrameData = 264

// Kind tells what a decoded frame is.
type Kind uint8

// Frame kinds.
const (
	KindInfo  Kind = iota // normal or extended information frame
	KindACK               // 00 00 FF 00 FF 00
	KindNACK              // 00 00 FF FF 00 00
	KindError             // 00 00 FF 01 FF 7F 81 00 (syntax error)
)

func (k Kind) String() string {
	switch k {
	case KindInfo:
		return "info"
	case KindACK:
		return "ACK"
	case KindNACK:
		return "NACK"
	case KindError:
		return "error"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Frame is one decoded frame. For KindInfo, TFI is D4 or D5 and Data holds
// the bytes after the TFI (command or response code first).
type Frame struct {
	Kind Kind
	TFI  byte
	Data []byte
}

// Fixed frames, exactly as sent on the wire.
var (
	ACK        = []byte{0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00}
	NACK       = []byte{0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00}
	ErrorFrame = []byte{0x00, 0x00, 0xFF, 0x01, 0xFF, 0x7F, 0x81, 0x00}
)

// Decoding errors.
var (
	// ErrIncomplete means the buffer holds the start of a frame but not all of it.
	ErrIncomplete = errors.New("pn532: incomplete frame")
	// ErrChecksum means a frame's LCS or DCS did not add up.
	ErrChecksum = errors.New("pn532: frame checksum mismatch")
	// ErrLength means a frame announced an impossible length.
	ErrLength = errors.New("pn532: bad frame length")
)

// Encode builds an information frame with the given TFI and data (command
// code first). It uses a normal frame when TFI+data fit in 255 bytes and an
// extended frame otherwise.
func Encode(tfi byte, data []byte) ([]byte, error) {
	if len(data) > MaxFrameData {
		return nil, fmt.Errorf("%w: %d data bytes, at most %d", ErrLength, len(data), MaxFrameData)
	}
	n := len(data) + 1 // LEN counts TFI too
	var out []byte
	if n <= 0xFF {
		out = make([]byte, 0, n+7)
		out = append(out, 0x00, 0x00, 0xFF, byte(n), byte(-n))
	} else {
		out = make([]byte, 0, n+10)
		hi, lo := byte(n>>8), byte(n)
		out = append(out, 0x00, 0x00, 0xFF, 0xFF, 0xFF, hi, lo, -(hi + lo))
	}
	sum := tfi
	out = append(out, tfi)
	for _, b := range data {
		sum += b
	}
	out = append(out, data...)
	out = append(out, -sum, 0x00)
	return out, nil
}

// Decode finds the next frame in buf. It scans for the start code 00 FF,
// so any number of preamble or garbage bytes may precede a frame, and the
// postamble is optional.
//
// It returns the frame and the number of bytes consumed, which stops right
// after the checksum: the postamble is left for the next call to skip, since
// a 00 there may just as well start the next frame's start code (00 FF) when
// the chip omits pre- and postamble. On ErrIncomplete,
// n bytes before a possible frame start may be dropped and the caller should
// read more. On ErrChecksum or ErrLength, n bytes (through the bad start
// code) should be dropped and decoding retried on the rest.
func Decode(buf []byte) (f Frame, n int, err error) {
	start := -1
	for i := 0; i+1 < len(buf); i++ {
		if buf[i] == 0x00 && buf[i+1] == 0xFF {
			start = i
			break
		}
	}
	if start < 0 {
		// Keep a trailing 00: it may be the first half of a start code.
		if len(buf) > 0 && buf[len(buf)-1] == 0x00 {
			return Frame{}, len(buf) - 1, ErrIncomplete
		}
		return Frame{}, len(buf), ErrIncomplete
	}
	p := buf[start+2:]
	skip := start + 2 // what to drop when this start code proves bad
	if len(p) < 2 {
		return Frame{}, start, ErrIncomplete
	}
	switch {
	case p[0] == 0x00 && p[1] == 0xFF:
		return Frame{Kind: KindACK}, start + 4, nil
	case p[0] == 0xFF && p[1] == 0x00:
		return Frame{Kind: KindNACK}, start + 4, nil
	}
	var length, hdr int
	if p[0] == 0xFF && p[1] == 0xFF {
		if len(p) < 5 {
			return Frame{}, start, ErrIncomplete
		}
		if p[2]+p[3]+p[4] != 0 {
			return Frame{}, skip, fmt.Errorf("%w: extended LCS", ErrChecksum)
		}
		length, hdr = int(p[2])<<8|int(p[3]), 5
		if length < 0x100 || length > MaxFrameData+1 {
			// An extended frame is only for lengths a normal one cannot carry.
			return Frame{}, skip, fmt.Errorf("%w: extended LEN %d", ErrLength, length)
		}
	} else {
		if p[0]+p[1] != 0 {
			return Frame{}, skip, fmt.Errorf("%w: LCS", ErrChecksum)
		}
		length, hdr = int(p[0]), 2
		if length == 0 {
			return Frame{}, skip, fmt.Errorf("%w: LEN 0", ErrLength)
		}
	}
	if len(p) < hdr+length+1 {
		return Frame{}, start, ErrIncomplete
	}
	body := p[hdr : hdr+length]
	var sum byte
	for _, b := range body {
		sum += b
	}
	if sum+p[hdr+length] != 0 {
		return Frame{}, skip, fmt.Errorf("%w: DCS", ErrChecksum)
	}
	n = start + 2 + hdr + length + 1
	if body[0] == tfiErr && length == 1 {
		return Frame{Kind: KindError, TFI: tfiErr}, n, nil
	}
	data := make([]byte, length-1)
	copy(data, body[1:])
	return Frame{Kind: KindInfo, TFI: body[0], Data: data}, n, nil
}
