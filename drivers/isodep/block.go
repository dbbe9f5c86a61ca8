package isodep

import "fmt"

// BlockType is the kind of an ISO-DEP block, from its PCB (ISO/IEC
// 14443-4 §7.1.1.1).
type BlockType uint8

// Block types.
const (
	IBlock      BlockType = iota + 1 // information block, carries the APDU
	RACK                             // receive-ready block, positive acknowledgement
	RNAK                             // receive-ready block, negative acknowledgement
	SDeselect                        // supervisory block DESELECT
	SWTX                             // supervisory block waiting time extension
	SParameters                      // supervisory block PARAMETERS (ISO/IEC 14443-4:2016)
)

func (t BlockType) String() string {
	switch t {
	case IBlock:
		return "I"
	case RACK:
		return "R(ACK)"
	case RNAK:
		return "R(NAK)"
	case SDeselect:
		return "S(DESELECT)"
	case SWTX:
		return "S(WTX)"
	case SParameters:
		return "S(PARAMETERS)"
	}
	return fmt.Sprintf("BlockType(%d)", uint8(t))
}

// PCB bits (ISO/IEC 14443-4 §7.1.1.1).
const (
	pcbNum      = 0x01 // b1: block number (I, R)
	pcbNAD      = 0x04 // b3: NAD following (I only)
	pcbCID      = 0x08 // b4: CID following
	pcbChaining = 0x10 // b5: chaining (I); NAK (R)
	pcbI        = 0x02 // 000x xx1x
	pcbR        = 0xA2 // 101x x01x
	pcbDeselect = 0xC2 // 1100 x010
	pcbWTX      = 0xF2 // 1111 x010
	pcbParams   = 0xF0 // 1111 x000 (ISO/IEC 14443-4:2016)
)

// Block is one ISO-DEP block without its CRC: PCB, optional CID, optional
// NAD and the INF field (ISO/IEC 14443-4 §7.1).
type Block struct {
	Type     BlockType
	Num      byte // block number, 0 or 1 (I- and R-blocks)
	Chaining bool // I-block: more blocks of this chain follow (§7.5.2)

	HasCID bool
	// CID is the whole CID byte: b4..b1 the card identifier, b8..b7 the
	// power level indication a card may send, b6..b5 RFU (§7.1.1.2, §7.4).
	CID byte

	HasNAD bool // I-blocks only (§7.1.1.3)
	NAD    byte

	// INF is the information field: the APDU part of an I-block, the WTX
	// byte of S(WTX), the parameters of S(PARAMETERS); empty otherwise.
	// ParseBlock returns a slice of its input.
	INF []byte
}

// WTXM returns the waiting time extension multiplier of an S(WTX) block:
// the low 6 bits of its INF byte (b8..b7 carry the power level, §7.3).
// It returns 0 for other blocks.
func (b Block) WTXM() byte {
	if b.Type != SWTX || len(b.INF) == 0 {
		return 0
	}
	return b.INF[0] & 0x3F
}

// ParseBlock parses one ISO-DEP block as the Transceiver returns it (CRC
// stripped). It rejects RFU PCB codings (ISO/IEC 14443-4 §7.1.1.1: I-block
// 000x xx1x, R-block 101x x01x, S-block 11xx x0x0 with 00 = DESELECT and
// 11 = WTX, plus 1111 x000 = PARAMETERS of the 2016 edition), missing CID
// or NAD bytes, an INF field on R-blocks and S(DESELECT), and an S(WTX)
// whose INF is not one byte with WTXM ≠ 0 (§7.3: WTXM 1..59; 60..63 are
// RFU and accepted here so that a caller can cap them at 59).
func ParseBlock(b []byte) (Block, error) {
	var blk Block
	if len(b) == 0 {
		return blk, fmt.Errorf("%w: empty frame", ErrInvalidBlock)
	}
	pcb := b[0]
	switch {
	case pcb&0xE2 == pcbI:
		blk.Type = IBlock
		blk.Num = pcb & pcbNum
		blk.Chaining = pcb&pcbChaining != 0
	case pcb&0xE6 == pcbR:
		blk.Type = RACK
		if pcb&pcbChaining != 0 {
			blk.Type = RNAK
		}
		blk.Num = pcb & pcbNum
	case pcb&^pcbCID == pcbDeselect:
		blk.Type = SDeselect
	case pcb&^pcbCID == pcbWTX:
		blk.Type = SWTX
	case pcb&^pcbCID == pcbParams:
		blk.Type = SParameters
	default:
		return blk, fmt.Errorf("%w: RFU PCB %02X", ErrInvalidBlock, pcb)
	}
	rest := b[1:]
	if pcb&pcbCID != 0 {
		if len(rest) == 0 {
			return blk, fmt.Errorf("%w: PCB %02X announces a CID, missing", ErrInvalidBlock, pcb)
		}
		blk.HasCID, blk.CID = true, rest[0]
		rest = rest[1:]
	}
	if blk.Type == IBlock && pcb&pcbNAD != 0 {
		if len(rest) == 0 {
			return blk, fmt.Errorf("%w: PCB %02X announces a NAD, missing", ErrInvalidBlock, pcb)
		}
		blk.HasNAD, blk.NAD = true, rest[0]
		rest = rest[1:]
	}
	switch blk.Type {
	case RACK, RNAK, SDeselect:
		if len(rest) != 0 {
			return blk, fmt.Errorf("%w: %v with %d INF bytes", ErrInvalidBlock, blk.Type, len(rest))
		}
	case SWTX:
		if len(rest) != 1 || rest[0]&0x3F == 0 {
			return blk, fmt.Errorf("%w: S(WTX) INF must be one byte with WTXM 1..59", ErrInvalidBlock)
		}
	}
	if len(rest) > 0 {
		blk.INF = rest
	}
	return blk, nil
}

// Encode returns the block's bytes without CRC. It returns nil for an
// unknown Type. NAD is encoded for I-blocks only.
func (b Block) Encode() []byte {
	var pcb byte
	switch b.Type {
	case IBlock:
		pcb = pcbI | b.Num&pcbNum
		if b.Chaining {
			pcb |= pcbChaining
		}
		if b.HasNAD {
			pcb |= pcbNAD
		}
	case RACK:
		pcb = pcbR | b.Num&pcbNum
	case RNAK:
		pcb = pcbR | pcbChaining | b.Num&pcbNum
	case SDeselect:
		pcb = pcbDeselect
	case SWTX:
		pcb = pcbWTX
	case SParameters:
		pcb = pcbParams
	default:
		return nil
	}
	out := make([]byte, 0, 3+len(b.INF))
	if b.HasCID {
		out = append(out, pcb|pcbCID, b.CID)
	} else {
		out = append(out, pcb)
	}
	if b.Type == IBlock && b.HasNAD {
		out = append(out, b.NAD)
	}
	return append(out, b.INF...)
}
