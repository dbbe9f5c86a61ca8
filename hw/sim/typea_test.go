package sim

import (
	"testing"
)

// TestTypeAActivationAndExchange lists a phone-like Type A target the way
// the PN532 firmware reports it (UM0701-02 §7.3.5: Tg SENS_RES SEL_RES
// NFCIDLength NFCID1 ATS), carries an APDU with InDataExchange and checks
// the libnfc presence check for Type A (R(NAK) B2 without CID).
func TestTypeAActivationAndExchange(t *testing.T) {
	c, f := newTestChip(t, nil)
	f.Place(AsTypeA(newTestCard(t), DefaultTypeA), 0)
	// A Type B poll does not see a Type A-only target.
	expect(t, c, "32 05 00 01 00", "33")
	expect(t, c, "4A 01 03 00", "4B 00")
	expect(t, c, "4A 01 00", "4B 01 01 04 00 20 04 08 3A 91 5C 05 78 80 80 02")
	expect(t, c, "40 01 00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01", "41 00 90 00")
	// One I-block received: block number 1 → 0; R(NAK) 0 → last block again, no CID.
	expect(t, c, "42 B2", "43 00 02 90 00")
	// R(NAK) 1 ≠ the card's number: R(ACK) with its number (rule 12).
	expect(t, c, "42 B3", "43 00 A2")
	f.Remove()
	expect(t, c, "42 B2", "43 01")
	expect(t, c, "40 01 00 B0 00 00 00", "41 01")
}

// TestTypeANotISODEP: a target whose SAK lacks bit 6 gets no RATS and the
// firmware reports no ATS.
func TestTypeANotISODEP(t *testing.T) {
	c, f := newTestChip(t, nil)
	a := DefaultTypeA
	a.SAK = 0x08 // MIFARE Classic 1K
	f.Place(AsTypeA(newTestCard(t), a), 0)
	expect(t, c, "4A 01 00", "4B 01 01 04 00 08 04 08 3A 91 5C")
}

// TestDiagnoseCardPresenceIsNotAPresenceCheck: Diagnose NumTst 06 says
// nothing useful on a PN532 (libnfc pn53x_ISO14443B_4_is_present); the
// model keeps answering "present" after the card left, so a host that
// relies on it is caught.
func TestDiagnoseCardPresenceIsNotAPresenceCheck(t *testing.T) {
	c, f := newTestChip(t, nil)
	expect(t, c, "00 06", "01 27") // no target listed
	f.Place(newTestCard(t), 0)
	activate(t, c)
	f.Remove()
	expect(t, c, "00 06", "01 00")
	expect(t, c, "42 BA 01", "43 01") // the R(NAK) check sees the removal
}

// TestMeterFirmwarePath checks the RF model of one 256-byte READ BINARY
// answer carried by the firmware's ISO-DEP with FSD 64: 258 answer bytes
// in blocks of at most 60 INF bytes (64 − PCB − CID − CRC) = 5 blocks, so
// 5 round trips, 4 of them started by the chip's R(ACK).
func TestMeterFirmwarePath(t *testing.T) {
	m := &Meter{}
	field := NewField()
	c := NewChip(field, &ChipOptions{Awake: true, Timing: fastTiming, Meter: m})
	field.Place(newTestCard(t), 0)
	expect(t, c, "32 05 00 01 00", "33")
	activate(t, c)
	m.Reset()
	expect(t, c, "40 01 00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01", "41 00 90 00")
	got := m.Snapshot()
	if got.RFRoundTrips != 1 || got.RFBytes != (2+15+2)+(2+2+2) {
		t.Fatalf("SELECT: %+v", got)
	}
	want := RFRoundTrip(false, 19, 6, 0) + fastTiming.withDefaults().CardAPDU
	if got.RFTime != want {
		t.Fatalf("SELECT RF time %v, want %v", got.RFTime, want)
	}
}
