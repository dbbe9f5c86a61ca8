// Package iso7816 encodes command APDUs, decodes response APDUs and their
// status words, and runs the GET RESPONSE (61xx) and wrong-Le (6Cxx)
// recoveries over any Card.
package iso7816

import (
	"context"
	"errors"
	"fmt"
)

// Card carries one command APDU to a card and returns its response APDU
// (data followed by SW1 SW2). Implementations are PN532 targets, software
// ISO-DEP sessions, PC/SC readers and the simulator's virtual cards.
type Card interface {
	Transmit(ctx context.Context, apdu []byte) ([]byte, error)
}

// Common status words.
const (
	SWOK                     uint16 = 0x9000
	SWWrongLength            uint16 = 0x6700
	SWSecurityNotSatisfied   uint16 = 0x6982
	SWAuthBlocked            uint16 = 0x6983
	SWRefDataBlocked         uint16 = 0x6984
	SWConditionsNotSatisfied uint16 = 0x6985
	SWFileNotFound           uint16 = 0x6A82
	SWWrongP1P2              uint16 = 0x6A86
	SWWrongParams            uint16 = 0x6B00
	SWINSNotSupported        uint16 = 0x6D00
	SWCLANotSupported        uint16 = 0x6E00
)

// Command is a short command APDU (ISO/IEC 7816-4 §5.1).
type Command struct {
	CLA, INS, P1, P2 byte
	Data             []byte
	// Le is the number of response bytes expected: 0 means none (no Le
	// byte), 256 is encoded as 00.
	Le int
}

// ErrEncoding is returned for a command that does not fit a short APDU.
var ErrEncoding = errors.New("iso7816: command does not fit a short APDU")

// Bytes encodes the command as a short APDU.
func (c Command) Bytes() ([]byte, error) {
	if len(c.Data) > 255 || c.Le < 0 || c.Le > 256 {
		return nil, fmt.Errorf("%w: Lc %d, Le %d", ErrEncoding, len(c.Data), c.Le)
	}
	out := make([]byte, 0, 6+len(c.Data))
	out = append(out, c.CLA, c.INS, c.P1, c.P2)
	if len(c.Data) > 0 {
		out = append(out, byte(len(c.Data)))
		out = append(out, c.Data...)
	}
	if c.Le > 0 {
		out = append(out, byte(c.Le)) // 256 encodes as 00
	}
	return out, nil
}

// Response is a decoded response APDU.
type Response struct {
	Data []byte
	SW   uint16
}

// ErrShortResponse is returned for a response APDU without a status word.
var ErrShortResponse = errors.New("iso7816: response shorter than a status word")

// ParseResponse splits a response APDU into data and status word.
func ParseResponse(b []byte) (Response, error) {
	if len(b) < 2 {
		return Response{}, fmt.Errorf("%w (%d bytes)", ErrShortResponse, len(b))
	}
	n := len(b) - 2
	return Response{Data: b[:n:n], SW: uint16(b[n])<<8 | uint16(b[n+1])}, nil
}

// StatusError is a status word other than 9000. Callers branch on it with
// errors.As and look at SW.
type StatusError struct {
	INS byte
	SW  uint16
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("iso7816: INS %02X answered %04X (%s)", e.INS, e.SW, SWText(e.SW))
}

// SWText gives a short meaning of a status word.
func SWText(sw uint16) string {
	switch {
	case sw == SWOK:
		return "success"
	case sw&0xFF00 == 0x6100:
		return "more data available"
	case sw&0xFFF0 == 0x63C0:
		return fmt.Sprintf("verification failed, %d tries left", sw&0x0F)
	case sw == SWWrongLength:
		return "wrong length"
	case sw == SWSecurityNotSatisfied:
		return "security status not satisfied"
	case sw == SWAuthBlocked, sw == SWRefDataBlocked:
		return "blocked"
	case sw == SWConditionsNotSatisfied:
		return "conditions of use not satisfied"
	case sw == SWFileNotFound:
		return "file or application not found"
	case sw == SWWrongP1P2, sw == SWWrongParams:
		return "wrong parameters"
	case sw&0xFF00 == 0x6C00:
		return "wrong Le"
	case sw == SWINSNotSupported:
		return "instruction not supported"
	case sw == SWCLANotSupported:
		return "class not supported"
	}
	return "unknown status"
}

// maxGetResponse bounds GET RESPONSE rounds so a misbehaving card cannot
// keep the reader busy forever (64 × 256 bytes is far more than any JPKI
// or mdoc answer).
const maxGetResponse = 64

// Transceive sends cmd and returns the response data. It follows 61xx with
// GET RESPONSE, resends once with the right Le on 6Cxx, and turns any final
// status other than 9000 into a *StatusError (the data read so far is
// returned with it).
func Transceive(ctx context.Context, card Card, cmd Command) ([]byte, error) {
	raw, err := cmd.Bytes()
	if err != nil {
		return nil, err
	}
	resp, err := exchange(ctx, card, raw)
	if err != nil {
		return nil, err
	}
	if resp.SW&0xFF00 == 0x6C00 {
		c := cmd
		c.Le = int(resp.SW & 0xFF)
		if c.Le == 0 {
			c.Le = 256
		}
		if raw, err = c.Bytes(); err != nil {
			return nil, err
		}
		if resp, err = exchange(ctx, card, raw); err != nil {
			return nil, err
		}
	}
	data := append([]byte(nil), resp.Data...)
	for i := 0; resp.SW&0xFF00 == 0x6100; i++ {
		if i == maxGetResponse {
			return data, fmt.Errorf("iso7816: more than %d GET RESPONSE rounds", maxGetResponse)
		}
		le := resp.SW & 0xFF
		if resp, err = exchange(ctx, card, []byte{cmd.CLA &^ 0x10, 0xC0, 0x00, 0x00, byte(le)}); err != nil {
			return data, err
		}
		data = append(data, resp.Data...)
	}
	if resp.SW != SWOK {
		return data, &StatusError{INS: cmd.INS, SW: resp.SW}
	}
	return data, nil
}

func exchange(ctx context.Context, card Card, apdu []byte) (Response, error) {
	b, err := card.Transmit(ctx, apdu)
	if err != nil {
		return Response{}, err
	}
	return ParseResponse(b)
}
