// Package sim is a simulated NXP PN532 on a pseudo-terminal, holding virtual
// contactless cards (My Number Cards: JPKI, card surface and input support
// applications).
//
// It speaks the real PN532 host frame protocol byte for byte (UM0701-02
// §6.2, as observed from libnfc 1.8's pn532_uart driver), so the same driver
// code runs against it and against a real chip, and libnfc's nfc-list lists
// its virtual card.
//
// Layers, each usable on its own:
//
//   - [Chip] is the PN532 firmware model: it takes the data of one decoded
//     host information frame (command code first, TFI D4 stripped) and
//     produces the response data (response code first, TFI D5 stripped).
//     It knows nothing about bytes on a wire.
//   - [Chip.Serve] is the HSU link layer: it reads host bytes from any
//     io.ReadWriter, tolerates the wake-up preamble and garbage, ACKs valid
//     information frames, writes responses, honours host ACK (abort) and
//     NACK (resend), and models LowVbat/PowerDown sleep.
//   - [Field] is the RF field: a [Target] (virtual card) is placed on it or
//     removed, possibly automatically after N APDUs.
//   - [JPKICard] is a virtual My Number Card: the JPKI AP with both key
//     pairs, and optionally the card surface AP (collation number B,
//     card-face record, CV certificate, challenge signing) and the input
//     support AP (PIN, basic 4 information, individual number, integrity
//     record, challenge key), with persistent retry counters and the
//     security state cleared on every SELECT by DF name and on power-off.
//     [FromTestPKI] builds one from a provisioning/testpki card. Its
//     behaviour follows ../shared/docs/mynumbercard.md, cited per rule.
//   - [Start] opens a pty, serves a Chip on its master side and returns a
//     [Sim] whose [Sim.Path] a host opens like /dev/ttyUSB0.
//
// # Conventions a host driver can rely on
//
// The chip starts in LowVbat mode, like a freshly powered PN532 on HSU: it
// ignores everything until a 0x55 byte (the HSU wake-up preamble
// 55 55 00 00 00 …) arrives; PowerDown (16) puts it back to sleep after its
// answer. Options.Awake skips the initial sleep.
//
// InListPassiveTarget 4A 01 03 00 (106 kbps Type B, AFI 00) answers
//
//	4B 01 01 50 PUPI(4) AppData(4) ProtInfo(3) 01 01
//
// where the last two bytes are the ATTRIB_RES length and ATTRIB_RES
// (MBLI 0, CID 1: the PN532 firmware runs the card with CID 1 and FSD 64).
// Other modulations, no card, or a card in HALT state answer 4B 00 once the
// MxRtyPassiveActivation retries (RFConfiguration item 05) are used up; with
// FF (the power-on default) the command waits until a card arrives or the
// host aborts it with an ACK frame.
//
// InDeselect and InRelease put the card into HALT (S(DESELECT)); a halted
// card does not answer the REQB of a new InListPassiveTarget until it leaves
// the field or the RF field is cycled (RFConfiguration 01 00 then 01 01),
// exactly as an ISO/IEC 14443-3 PICC. InSelect (or an InDataExchange to a
// deselected target) wakes it again with WUPB + ATTRIB.
//
// InDataExchange 40 01 <APDU> answers 41 00 <R-APDU>; a 256-byte answer
// plus its status word comes back in one extended frame. When the card has
// left the field the answer is 41 01 (timeout) after Timing.Timeout.
// Host chaining: Tg 41 on every chunk but the last (each answered 41 00).
// Answers longer than 262 bytes come in pieces with status 40 (MI); fetch
// the rest with 40 01.
//
// Diagnose 00 06 (card presence) answers 01 00 whenever a target is listed,
// whether it is still in the field or not, and 01 27 when none is: libnfc
// says NumTst 06 is not supported on a PN532 (pn53x_ISO14443B_4_is_present),
// so a host must check presence with an R(NAK) through InCommunicateThru
// (42 BA 01 for the firmware's Type B target, 42 B2 for Type A), which the
// card answers while present and which times out (43 01) once it is gone.
//
// InCommunicateThru (42) carries raw ISO/IEC 14443-3A frames to a Type A
// target when the CIU framing is Type A, and ISO/IEC 14443-3B frames once
// the CIU framing is Type B (after a Type B InListPassiveTarget, or TxMode 0x6302 /
// RxMode 0x6303 framing bits = 11): REQB/WUPB, ATTRIB, HLTB and ISO-DEP
// I/R/S blocks, so a host can run ISO-DEP itself (DESELECT CA 01, WUPB
// 05 00 08, ATTRIB 1D PUPI 00 08 01 00, then 02 <APDU>/03 <APDU>, chaining
// with R(ACK)). Before COMPUTE DIGITAL SIGNATURE the card asks for more
// time with S(WTX) F2 01 (FA 01 01 with CID 1); echo it to get the answer.
// Anything the card does not answer gives 43 01 (timeout);
// CRC_B is added and checked by the chip, as with CRC enabled in TxMode and
// RxMode.
//
// The frame log (Options.Logger at Debug level) masks secrets and personal
// data (doc §7): the data of VERIFY (INS 20), CHANGE REFERENCE DATA (24),
// RESET RETRY COUNTER (2C) and CHANGE KEY (32) APDUs in every AP, also in
// later chunks of a host-chained APDU, and the card's answers to READ
// BINARY of the personal-data files (input support EF 0001–0003, card
// surface EF 0001/0002/0005, JPKI EF 0001), shown as "**" after the
// response code and status byte.
//
// Unknown or malformed commands answer the syntax error frame
// 00 00 FF 01 FF 7F 81 00. A frame with a bad LCS or DCS is dropped without
// ACK: the chip waits for the host's retry.
package sim
