package isodep

import (
	"context"
	"fmt"
)

// Type B commands (ISO/IEC 14443-3 clause 7).
const (
	cmdREQB   = 0x05 // APf, anticollision prefix of REQB/WUPB (§7.7)
	cmdATTRIB = 0x1D // ATTRIB (§7.10)
	cmdRATS   = 0xE0 // RATS start byte (ISO/IEC 14443-4 §5.1)
)

// ActivateB wakes a Type B card and activates ISO-DEP with the host's own
// ATTRIB, so that the card sends frames up to FSD 256 instead of the
// 64 bytes the PN532 firmware asks for.
//
// It sends WUPB `05 AFI 08` (REQB `05 AFI 00` with Opts.REQB): PARAM b4
// selects WUPB, b3..b1 = 000 a single slot, b5 = 0 no extended ATQB
// (ISO/IEC 14443-3 §7.7). It parses the ATQB, requires Protocol_Type
// "ISO/IEC 14443-4" (else ErrNotISODEP), then sends
//
//	1D PUPI(4) 00 08 01 CID
//
// (§7.10): Param 1 = 00 (default TR0 and TR1, EOF and SOF required),
// Param 2 = 08 (106 kbit/s both ways, FSDI 8 = 256 bytes), Param 3 = 01
// (confirms ISO/IEC 14443-4), Param 4 = CID (Opts.CID if the ATQB's FO
// says CID supported, else 0). The answer to ATTRIB, `MBLI|CID` (§7.11),
// must echo the CID. After the SFGT of an extended ATQB the Conn is ready.
//
// A card the PN532 firmware activated (InListPassiveTarget 106B, CID 1)
// does not answer WUPB: call DeselectCID(ctx, t, 1) first.
func ActivateB(ctx context.Context, t Transceiver, opts *Opts) (*Conn, ATQB, error) {
	o, err := normalize(opts)
	if err != nil {
		return nil, ATQB{}, err
	}
	param := byte(0x08) // WUPB
	if o.REQB {
		param = 0x00
	}
	req := []byte{cmdREQB, o.AFI, param}
	logFrame(ctx, o.Logger, "isodep tx", req)
	raw, err := t.Transceive(ctx, req, FWTATQB+DeltaFWT+o.Margin)
	if err != nil {
		return nil, ATQB{}, fmt.Errorf("isodep: WUPB/REQB: %w", err)
	}
	atqb, err := ParseATQB(raw)
	if err != nil {
		return nil, ATQB{}, err
	}
	if !atqb.ISO14443_4 {
		return nil, atqb, fmt.Errorf("%w: ATQB Protocol_Type %X", ErrNotISODEP, atqb.ProtocolType)
	}
	var cid byte
	if atqb.CIDSupported {
		cid = o.CID
	}
	attrib := []byte{cmdATTRIB, atqb.PUPI[0], atqb.PUPI[1], atqb.PUPI[2], atqb.PUPI[3],
		0x00,           // Param 1: TR0, TR1 default; EOF, SOF required
		0x00<<4 | fsdi, // Param 2: 106 kbit/s both ways, FSDI
		0x01,           // Param 3: ISO/IEC 14443-4 compliant
		cid & 0x0F,     // Param 4: b8..b5 RFU, b4..b1 CID
	}
	logFrame(ctx, o.Logger, "isodep tx", attrib)
	// The card answers ATTRIB within the FWT of its ATQB (§7.10, §7.11).
	ans, err := t.Transceive(ctx, attrib, atqb.FWT+DeltaFWT+o.Margin)
	if err != nil {
		return nil, atqb, fmt.Errorf("isodep: ATTRIB: %w", err)
	}
	if len(ans) == 0 {
		return nil, atqb, fmt.Errorf("%w: empty answer to ATTRIB", ErrProtocol)
	}
	if got := ans[0] & 0x0F; got != cid {
		return nil, atqb, fmt.Errorf("%w: answer to ATTRIB has CID %d, want %d", ErrProtocol, got, cid)
	}
	// SFGT: the guard time the card needs after its answer before it can
	// receive the first block (ISO/IEC 14443-3:2011 §7.9.4).
	if err := o.sleep(ctx, atqb.SFGT); err != nil {
		return nil, atqb, fmt.Errorf("isodep: SFGT: %w", err)
	}
	c, err := newConn(t, Params{FSC: atqb.FSC, FWT: atqb.FWT, CID: cid, UseCID: cid != 0, MBLI: ans[0] >> 4}, o)
	if err != nil {
		return nil, atqb, err
	}
	return c, atqb, nil
}

// ActivateA activates ISO-DEP on a Type A card the front end has already
// selected (anticollision and SELECT are done by the chip firmware; check
// ISO14443_4(sak) first). It sends RATS `E0 (FSDI<<4 | CID)` = `E0 80`
// for FSD 256 and CID 0 (ISO/IEC 14443-4 §5.1), parses the ATS and waits
// its SFGT (§5.2.5). The CID is used only when the ATS says the card
// supports CID and Opts.CID is not 0.
func ActivateA(ctx context.Context, t Transceiver, opts *Opts) (*Conn, ATS, error) {
	o, err := normalize(opts)
	if err != nil {
		return nil, ATS{}, err
	}
	// RATS parameter byte: b8..b5 FSDI, b4..b1 CID (§5.1).
	rats := []byte{cmdRATS, fsdi<<4 | o.CID}
	logFrame(ctx, o.Logger, "isodep tx", rats)
	raw, err := t.Transceive(ctx, rats, FWTActivation+DeltaFWT+o.Margin)
	if err != nil {
		return nil, ATS{}, fmt.Errorf("isodep: RATS: %w", err)
	}
	ats, err := ParseATS(raw)
	if err != nil {
		return nil, ATS{}, err
	}
	if err := o.sleep(ctx, ats.SFGT); err != nil {
		return nil, ats, fmt.Errorf("isodep: SFGT: %w", err)
	}
	useCID := ats.CIDSupported && o.CID != 0
	var cid byte
	if useCID {
		cid = o.CID
	}
	c, err := newConn(t, Params{FSC: ats.FSC, FWT: ats.FWT, CID: cid, UseCID: useCID}, o)
	if err != nil {
		return nil, ats, err
	}
	return c, ats, nil
}
