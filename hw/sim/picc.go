package sim

import (
	"bytes"
	"context"
)

// piccState is the ISO/IEC 14443-3 Type B state of the card on the field.
type piccState uint8

const (
	piccIdle   piccState = iota // powered, waiting for REQB/WUPB
	piccReady                   // answered REQB/WUPB, waiting for ATTRIB
	piccActive                  // ATTRIB done: ISO-DEP blocks
	piccHalt                    // after HLTB or S(DESELECT): only WUPB wakes it
)

func (s piccState) String() string {
	return [...]string{"idle", "ready", "active", "halt"}[s]
}

// picc is the card-side protocol state of one placement of a card: what the
// card's own contactless front end keeps while it is powered.
type picc struct {
	seq     uint64 // Field placement this state belongs to
	card    Target
	powered bool
	state   piccState
	cid     byte // assigned by ATTRIB
	fsd     int  // largest frame the reader accepts, from ATTRIB
	bn      byte // PICC block number (ISO/IEC 14443-4 §7.5.4.2 rule C: 1 at activation)
	rxChain []byte
	txRest  []byte
	last    []byte // last block sent, for retransmission on R(NAK)
	wtxAPDU []byte // command waiting for the reader's S(WTX) response

	// Personal-data marks for the frame log (doc §7): txPersonal for
	// txRest, lastPersonal for last, outPersonal for the block frame just
	// returned.
	txPersonal, lastPersonal, outPersonal bool
}

// WTXRequester is an optional Target method: a card that needs more than
// its frame waiting time for a command returns the WTXM (1–59) it asks for
// with S(WTX) before answering; 0 means no extension. Only the software
// ISO-DEP path (InCommunicateThru) shows the S(WTX) exchange to the host;
// with InDataExchange the PN532 firmware answers it itself.
type WTXRequester interface {
	WTX(apdu []byte) byte
}

// afiMatches applies ISO/IEC 14443-3 §7.7.2: AFI 00 addresses every card;
// otherwise a zero nibble in the request matches any nibble of the card.
func afiMatches(req, card byte) bool {
	if req == 0 || req == card {
		return true
	}
	hiOK := req>>4 == 0 || req>>4 == card>>4
	loOK := req&0x0F == 0 || req&0x0F == card&0x0F
	return hiOK && loOK
}

// wake runs REQB (wupb false) or WUPB and reports whether the card answered.
func (p *picc) wake(afi byte, wupb bool) bool {
	switch p.state {
	case piccActive:
		return false
	case piccHalt:
		if !wupb {
			return false
		}
	}
	if !afiMatches(afi, p.card.TypeB().AppData[0]) {
		return false
	}
	p.state = piccReady
	return true
}

// activate runs ATTRIB with the given CID and FSD.
func (p *picc) activate(cid byte, fsd int) {
	p.state = piccActive
	p.cid = cid & 0x0F
	p.fsd = fsd
	p.bn = 1
	p.rxChain, p.txRest, p.last = nil, nil, nil
}

// frame handles one raw ISO/IEC 14443-3B frame (CRC_B stripped) sent by
// InCommunicateThru and returns the card's answer, or nil when the card
// stays silent.
func (p *picc) frame(ctx context.Context, f *Field, in []byte) []byte {
	p.outPersonal = false
	if len(in) == 0 || !p.powered {
		return nil
	}
	switch {
	case in[0] == 0x05 && len(in) == 3: // REQB / WUPB: APf AFI PARAM
		if !p.wake(in[1], in[2]&0x08 != 0) {
			return nil
		}
		return append([]byte{0x50}, p.card.TypeB().Bytes()...)
	case in[0] == 0x1D && len(in) >= 9 && p.state == piccReady: // ATTRIB
		tb := p.card.TypeB()
		if !bytes.Equal(in[1:5], tb.PUPI[:]) {
			return nil
		}
		p.activate(in[8], frameSize(in[6]&0x0F))
		return []byte{p.cid} // MBLI 0 | CID
	case in[0] == 0x50 && len(in) == 5 && (p.state == piccReady || p.state == piccActive): // HLTB
		tb := p.card.TypeB()
		if !bytes.Equal(in[1:5], tb.PUPI[:]) {
			return nil
		}
		p.state = piccHalt
		return []byte{0x00}
	}
	if p.state != piccActive {
		return nil
	}
	return p.block(ctx, f, in)
}

// block handles one ISO/IEC 14443-4 block addressed to an active card.
func (p *picc) block(ctx context.Context, f *Field, in []byte) []byte {
	pcb := in[0]
	rest := in[1:]
	if pcb&0x08 != 0 { // CID follows
		if len(rest) == 0 || rest[0]&0x0F != p.cid {
			return nil
		}
		rest = rest[1:]
	} else if p.cid != 0 {
		return nil // a card with a CID ignores blocks without one
	}
	switch {
	case pcb&0xE2 == 0x02: // I-block
		if pcb&0x04 != 0 {
			return nil // NAD: not supported by the card (FO bit 2 clear)
		}
		p.bn ^= 1          // rule D
		if pcb&0x10 != 0 { // PCD chaining
			p.rxChain = append(p.rxChain, rest...)
			return p.send(p.rBlock(false))
		}
		cmd := append(p.rxChain, rest...)
		p.rxChain = nil
		if w, ok := p.card.(WTXRequester); ok {
			if wtxm := w.WTX(cmd); wtxm != 0 {
				p.wtxAPDU = cmd
				return p.send(append(p.header(0xF2), wtxm&0x3F))
			}
		}
		return p.answer(ctx, f, cmd)
	case pcb&0xE6 == 0xA2: // R-block
		num := pcb & 1
		if num == p.bn { // rule 11: retransmit
			p.outPersonal = p.lastPersonal
			return p.last
		}
		if pcb&0x10 != 0 { // rule 12: R(NAK) with another number
			return p.send(p.rBlock(false))
		}
		if len(p.txRest) == 0 {
			return nil
		}
		p.bn ^= 1 // rule 13: continue chaining
		return p.send(p.nextI())
	case pcb&0xF7 == 0xC2: // S(DESELECT)
		p.state = piccHalt
		p.wtxAPDU = nil
		return p.send(p.header(0xC2))
	case pcb&0xF7 == 0xF2 && p.wtxAPDU != nil && len(rest) == 1: // S(WTX) response
		cmd := p.wtxAPDU
		p.wtxAPDU = nil
		return p.answer(ctx, f, cmd)
	}
	return nil // S(WTX) responses without a request, PPS, RFU
}

// answer runs cmd on the card and sends the first I-block of its answer.
func (p *picc) answer(ctx context.Context, f *Field, cmd []byte) []byte {
	resp, personal, ok, err := f.transmit(ctx, p.seq, cmd)
	if !ok || err != nil {
		return nil
	}
	p.txRest, p.txPersonal = resp, personal
	return p.send(p.nextI())
}

// header starts a block with pcb and the card's CID when it has one.
func (p *picc) header(pcb byte) []byte {
	if p.cid != 0 {
		return []byte{pcb | 0x08, p.cid}
	}
	return []byte{pcb}
}

func (p *picc) rBlock(nak bool) []byte {
	pcb := 0xA2 | p.bn
	if nak {
		pcb |= 0x10
	}
	return p.header(pcb)
}

// nextI cuts the next I-block off the pending response, chaining when it
// does not fit the reader's frame size (PCB, CID and 2 CRC bytes count).
func (p *picc) nextI() []byte {
	h := p.header(0x02 | p.bn)
	room := max(p.fsd-len(h)-2, 1)
	chunk := p.txRest
	if len(chunk) > room {
		chunk = chunk[:room]
		h[0] |= 0x10
	}
	p.txRest = p.txRest[len(chunk):]
	p.outPersonal = p.txPersonal
	return append(h, chunk...)
}

func (p *picc) send(b []byte) []byte {
	p.last, p.lastPersonal = b, p.outPersonal
	return b
}
