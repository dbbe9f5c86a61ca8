package isodep

import (
	"fmt"
	"time"
)

// ATQB is the answer of a Type B card to REQB or WUPB (ISO/IEC 14443-3
// §7.9): `50 PUPI(4) AppData(4) ProtInfo(3 or 4)`, CRC_B stripped.
type ATQB struct {
	PUPI    [4]byte // pseudo-unique PICC identifier (§7.9.2)
	AppData [4]byte // application data (§7.9.3)
	AFI     byte    // AppData[0]: application family identifier (§7.9.3)

	// Protocol Info byte 1, Bit_Rate_capability (§7.9.4).
	SameBitRate bool  // b8: the card needs the same bit rate both ways
	PICCToPCD   Rates // b7..b5 (847, 424, 212 kbit/s)
	PCDToPICC   Rates // b3..b1 (847, 424, 212 kbit/s)

	// Protocol Info byte 2 (§7.9.4).
	MaxFrameCode byte // b8..b5, Max_Frame_Size code
	FSC          int  // FrameSize(MaxFrameCode): the card's largest frame incl. PCB, CID, NAD, CRC
	ProtocolType byte // b4..b1, Protocol_Type
	// ISO14443_4 is Protocol_Type b1 with b4 clear: the card supports
	// ISO/IEC 14443-4 (b4 set is RFU and read as not supported; b3..b2
	// carry the minimum TR2 in ISO/IEC 14443-3:2011).
	ISO14443_4 bool

	// Protocol Info byte 3 (§7.9.4).
	FWI          byte          // b8..b5, as received
	FWT          time.Duration // FrameWaitingTime(FWI), FWI 15 read as 4
	ADC          byte          // b4..b3, application data coding
	NADSupported bool          // FO b2
	CIDSupported bool          // FO b1

	// Extended ATQB only (ISO/IEC 14443-3:2011 §7.9.4, Protocol Info
	// byte 4, answered when REQB/WUPB PARAM b5 asked for it).
	Extended bool
	SFGI     byte          // byte 4 b8..b5 (0 when not extended)
	SFGT     time.Duration // guard time after the ATTRIB answer, 0 = none
}

// ParseATQB parses an ATQB of 12 bytes, or 13 for the extended ATQB
// (ISO/IEC 14443-3 §7.9), as it comes back from REQB/WUPB without CRC_B,
// or as the PN532 reports it in the InListPassiveTarget 106B answer.
func ParseATQB(b []byte) (ATQB, error) {
	var a ATQB
	if len(b) != 12 && len(b) != 13 {
		return a, fmt.Errorf("%w: %d bytes, want 12 or 13", ErrInvalidATQB, len(b))
	}
	if b[0] != 0x50 { // §7.9.1: the ATQB starts with '50'
		return a, fmt.Errorf("%w: first byte %02X, want 50", ErrInvalidATQB, b[0])
	}
	copy(a.PUPI[:], b[1:5])
	copy(a.AppData[:], b[5:9])
	a.AFI = a.AppData[0]

	br := b[9]
	a.SameBitRate = br&0x80 != 0
	a.PICCToPCD = Rates(br>>4) & 0x07
	a.PCDToPICC = Rates(br) & 0x07

	a.MaxFrameCode = b[10] >> 4
	a.FSC = FrameSize(a.MaxFrameCode)
	a.ProtocolType = b[10] & 0x0F
	a.ISO14443_4 = a.ProtocolType&0x01 != 0 && a.ProtocolType&0x08 == 0

	a.FWI = b[11] >> 4
	a.FWT = FrameWaitingTime(a.FWI)
	a.ADC = (b[11] >> 2) & 0x03
	a.NADSupported = b[11]&0x02 != 0
	a.CIDSupported = b[11]&0x01 != 0

	if len(b) == 13 {
		a.Extended = true
		a.SFGI = b[12] >> 4
		a.SFGT = startupGuardTime(a.SFGI)
	}
	return a, nil
}
