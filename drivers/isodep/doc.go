// Package isodep runs the ISO/IEC 14443-4 half-duplex block transmission
// protocol ("ISO-DEP", T=CL) on the host, one raw frame at a time, over a
// contactless front end that only moves frames and adds or checks the CRC:
// the PN532's InCommunicateThru (the "software ISO-DEP" path).
//
// The package has three layers:
//
//   - Pure parsers of the activation data: ParseATQB (Type B, ISO/IEC
//     14443-3 §7.9), ParseATS (Type A, ISO/IEC 14443-4 §5.2), ISO14443_4 for
//     the Type A SAK, and ParseBlock / Block.Encode for one ISO-DEP block
//     (ISO/IEC 14443-4 §7.1).
//   - Activation: ActivateB sends WUPB (or REQB) and its own ATTRIB with
//     FSD 256, ActivateA sends RATS, DeselectCID deselects a card the chip
//     firmware activated before the host takes over.
//   - Conn, the ISO-DEP session: I-block chaining both ways within FSC and
//     FSD, the block numbering and handling rules (ISO/IEC 14443-4:2008
//     §7.5.3, §7.5.4), error recovery with R(NAK)/R(ACK) (§7.5.5), S(WTX)
//     (§7.3), presence check by R(NAK) and S(DESELECT) (clause 8). Conn implements
//     iso7816.Card.
//
// Clause numbers follow ISO/IEC 14443-3:2011 and ISO/IEC 14443-4:2008.
// The 2018 edition of part 4 inserts subclauses 5.1 and 7.1 and renumbers
// the rest (ATS 5.3, block format 7.2, protocol operation 7.6, presence
// check 7.6.6); rule numbers (A–E, 1–13) cited here are the 2008 ones.
//
// Timing. FWT = (256 × 16 / fc) × 2^FWI with fc = 13.56 MHz (ISO/IEC
// 14443-4 §7.2); every wait passed to the Transceiver is the relevant FWT
// plus ΔFWT = 49152/fc (≈ 3.6 ms, the PCD tolerance of ISO/IEC 14443-3
// Type B and of ISO/IEC 14443-4 §7.2, also used by EMV) plus Opts.Margin.
// The Transceiver adds its own host-link latency.
//
// Privacy. APDUs may carry PINs: the package never logs frame contents.
// With Opts.Logger set it logs PCB bytes and lengths at debug level only.
package isodep
