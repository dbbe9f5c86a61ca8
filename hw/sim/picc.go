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
	// ranAPDU: the block just handled made the card run an APDU (for the
	// timing model's card processing time).
	ranAPDU bool
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

// typeB returns the card's Type B side, or nil for a Type A-only target.
func (p *picc) typeB() TypeBTarget {
	tb, _ := p.card.(TypeBTarget)
	return tb
}

// typeA returns the target's Type A side, or nil for a Type B-only card.
func (p *picc) typeA() TypeATarget {
	ta, _ := p.card.(TypeATarget)
	return ta
}

// wakeA runs REQA (wupa false) or WUPA, anticollision and SELECT, and
// reports whether the target answered (ISO/IEC 14443-3 §6.3: IDLE →
// READY → ACTIVE; HALT answers only WUPA). The PN532 firmware runs the
// whole sequence in InListPassiveTarget 106A (UM0701-02 §7.3.5).
func (p *picc) wakeA(wupa bool) bool {
	if p.typeA() == nil {
		return false
	}
	switch p.state {
	case piccActive:
		return false
	case piccHalt:
		if !wupa {
			return false
		}
	}
	p.state = piccReady
	return true
}

// wake runs REQB (wupb false) or WUPB and reports whether the card answered.
func (p *picc) wake(afi byte, wupb bool) bool {
	tb := p.typeB()
	if tb == nil {
		return false
	}
	switch p.state {
	case piccActive:
		return false
	case piccHalt:
		if !wupb {
			return false
		}
	}
	if !afiMatches(afi, tb.TypeB().AppData[0]) {
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

// frame handles one raw ISO/IEC 14443-3 frame (CRC stripped) sent by
// InCommunicateThru with Type A (framingA) or Type B framing and returns
// the card's answer, or nil when the card stays silent: a target does not
// demodulate the other technology's frames.
func (p *picc) frame(ctx context.Context, f *Field, in []byte, framingA bool) []byte {
	p.outPersonal, p.ranAPDU = false, false
	if len(in) == 0 || !p.powered {
		return nil
	}
	if framingA {
		if p.typeA() == nil {
			return nil
		}
		if len(in) == 2 && in[0] == 0x50 && in[1] == 0x00 && p.state != piccIdle { // HLTA: no answer (ISO/IEC 14443-3 §6.4.3)
			p.state = piccHalt
			return nil
		}
		if p.state != piccActive {
			return nil
		}
		return p.block(ctx, f, in)
	}
	tbt := p.typeB()
	if tbt == nil {
		return nil
	}
	switch {
	case in[0] == 0x05 && len(in) == 3: // REQB / WUPB: APf AFI PARAM
		if !p.wake(in[1], in[2]&0x08 != 0) {
			return nil
		}
		return append([]byte{0x50}, tbt.TypeB().Bytes()...)
	case in[0] == 0x1D && len(in) >= 9 && p.state == piccReady: // ATTRIB
		tb := tbt.TypeB()
		if !bytes.Equal(in[1:5], tb.PUPI[:]) {
			return nil
		}
		p.activate(in[8], frameSize(in[6]&0x0F))
		return []byte{p.cid} // MBLI 0 | CID
	case in[0] == 0x50 && len(in) == 5 && (p.state == piccReady || p.state == piccActive): // HLTB
		tb := tbt.TypeB()
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
	p.ranAPDU = true
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

// firmwareExchange brings the card-side block state up to date after an
// APDU the chip's firmware carried (InDataExchange): blocks received
// toggled the block number; the last I-block sent carried lastINF.
func (p *picc) firmwareExchange(blocks int, lastINF []byte, personal bool) {
	for range blocks {
		p.bn ^= 1
	}
	p.rxChain, p.txRest = nil, nil
	p.outPersonal = personal
	p.send(append(p.header(0x02|p.bn), lastINF...))
}

func (p *picc) send(b []byte) []byte {
	p.last, p.lastPersonal = b, p.outPersonal
	return b
}
