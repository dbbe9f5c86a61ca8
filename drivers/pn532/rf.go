package pn532

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kazashi/kazashi/drivers/isodep"
)

// Target is an activated target in the chip's table: a Type B card or a
// Type A card or phone.
type Target interface {
	// Number is the chip's target number (Tg).
	Number() byte
	// Tech names the technology: "iso14443-4a" or "iso14443-4b".
	Tech() string
	// ISO14443_4 reports whether the target speaks ISO/IEC 14443-4.
	ISO14443_4() bool
	// ID is the UID (Type A) or PUPI (Type B). It identifies a card or,
	// for phones and many cards, one activation: never log it in full.
	ID() []byte
}

// activeTarget remembers what the presence check needs of the target the
// last poll activated.
type activeTarget struct {
	ok     bool
	typeA  bool
	cid    byte
	hasCID bool
	fwt    time.Duration
}

func (d *Dev) setActive(t Target) {
	a := activeTarget{ok: true}
	switch t := t.(type) {
	case *TargetB:
		a.cid, a.hasCID = t.cid()
		a.fwt = t.FWT()
	case *TargetA:
		a.typeA = true
		a.fwt = t.ATS.FWT
		// The PN532 firmware sends RATS with CID 0 (UM0701-02 §7.3.5:
		// the chip handles the ISO/IEC 14443-4 activation itself), so
		// its blocks carry no CID: libnfc pn53x_ISO14443A_4_is_present
		// sends R(NAK) B2 without one.
	}
	d.mu.Lock()
	d.active = a
	d.mu.Unlock()
}

// TargetA is an activated ISO/IEC 14443 Type A target (a phone, or a
// Type A card).
type TargetA struct {
	Tg   byte
	ATQA [2]byte // SENS_RES
	SAK  byte    // SEL_RES
	UID  []byte  // NFCID1: 4, 7 or 10 bytes
	// ATSRaw is the answer to the RATS the firmware sent (TL first), empty
	// for a target that is not ISO/IEC 14443-4 compliant.
	ATSRaw []byte
	// ATS is ATSRaw parsed: frame size, waiting time, CID support.
	ATS isodep.ATS
}

// Number is the chip's target number (Tg).
func (t *TargetA) Number() byte { return t.Tg }

// Tech is "iso14443-4a".
func (t *TargetA) Tech() string { return "iso14443-4a" }

// ISO14443_4 reports SAK bit 6 (ISO/IEC 14443-3 §6.5.3.4) and an ATS.
func (t *TargetA) ISO14443_4() bool { return isodep.ISO14443_4(t.SAK) && len(t.ATSRaw) > 0 }

// ID is the UID.
func (t *TargetA) ID() []byte { return t.UID }

// ListTypeA polls once for a 106 kbps Type A target and returns it
// activated (the firmware runs anticollision, SELECT and, for an
// ISO/IEC 14443-4 target, RATS), or ErrNoTarget.
func (d *Dev) ListTypeA(ctx context.Context) (*TargetA, error) {
	r, err := d.Command(ctx, cmdInListPassiveTarget, []byte{0x01, brTy106A}, 0)
	if err != nil {
		return nil, err
	}
	t, err := parseTypeA(r)
	if err != nil {
		return nil, err
	}
	d.setActive(t)
	return t, nil
}

// parseTypeA parses the InListPassiveTarget answer for 106 kbps Type A
// (UM0701-02 §7.3.5): NbTg Tg SENS_RES(2) SEL_RES NFCIDLength NFCID1
// [ATS]. The ATS is present when SEL_RES announces ISO/IEC 14443-4.
func parseTypeA(r []byte) (*TargetA, error) {
	if len(r) < 1 {
		return nil, fmt.Errorf("%w: empty InListPassiveTarget answer", ErrResponse)
	}
	if r[0] == 0 {
		return nil, ErrNoTarget
	}
	if len(r) < 6 {
		return nil, fmt.Errorf("%w: Type A target % X", ErrResponse, r)
	}
	t := &TargetA{Tg: r[1], ATQA: [2]byte{r[2], r[3]}, SAK: r[4]}
	n := int(r[5])
	if n != 4 && n != 7 && n != 10 || len(r) < 6+n {
		return nil, fmt.Errorf("%w: Type A UID length %d", ErrResponse, n)
	}
	t.UID = append([]byte(nil), r[6:6+n]...)
	rest := r[6+n:]
	if !isodep.ISO14443_4(t.SAK) {
		return t, nil
	}
	if len(rest) == 0 {
		return nil, fmt.Errorf("%w: ISO/IEC 14443-4 Type A target without ATS", ErrResponse)
	}
	ats, err := isodep.ParseATS(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrResponse, err)
	}
	t.ATSRaw = append([]byte(nil), rest...)
	t.ATS = ats
	return t, nil
}

// retryTimeoutCode is the smallest RFConfiguration item 02 fRetryTimeout
// code whose timeout (100 µs × 2^(n-1), UM0701-02 §7.3.1) is at least d,
// capped at 0x10 (3.28 s), the largest the chip accepts.
func retryTimeoutCode(d time.Duration) byte {
	for n := byte(1); n < 0x10; n++ {
		if 100*time.Microsecond<<(n-1) >= d {
			return n
		}
	}
	return 0x10
}

// fATRRESTimeout is RFConfiguration item 02's second byte, left at the
// chip's default 0x0B (102.4 ms, UM0701-02 §7.3.1); it only matters for
// ISO/IEC 18092 targets.
const fATRRESTimeout = 0x0B

// CommunicateThru sends raw, one frame without CRC, to the target with
// InCommunicateThru (the chip adds and checks CRC and applies the framing
// of the last activated technology) and returns the answer. The chip
// waits at most timeout for it: RFConfiguration item 02 fRetryTimeout
// bounds InCommunicateThru (UM0701-02 §7.3.1, §7.3.9). A silent target is
// a StatusError with code 01.
func (d *Dev) CommunicateThru(ctx context.Context, raw []byte, timeout time.Duration) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.communicateThru(ctx, raw, timeout)
}

func (d *Dev) communicateThru(ctx context.Context, raw []byte, timeout time.Duration) ([]byte, error) {
	if code := retryTimeoutCode(timeout); code != d.retryTimeout {
		if _, err := d.command(ctx, cmdRFConfiguration, []byte{rfItemTimings, 0x00, fATRRESTimeout, code}, d.opts.CommandTimeout, d.opts.ACKTimeout); err != nil {
			return nil, fmt.Errorf("pn532: RFConfiguration timings: %w", err)
		}
		d.retryTimeout = code
	}
	chipWait := 100 * time.Microsecond << (d.retryTimeout - 1)
	r, err := d.command(ctx, cmdInCommunicateThru, raw, chipWait+d.opts.CommandTimeout, d.opts.ACKTimeout)
	if err != nil {
		return nil, err
	}
	if len(r) < 1 {
		return nil, fmt.Errorf("%w: InCommunicateThru without status", ErrResponse)
	}
	if c := r[0] & statusErrorMask; c != 0 {
		return nil, &StatusError{Cmd: cmdInCommunicateThru, Code: c}
	}
	return r[1:], nil
}

// presenceAttempts is libnfc's presence loop: an error other than a
// timeout (CRC, parity, framing while the card is being pulled away) is
// tried again, twice in all (libnfc 1.8 pn53x_ISO14443B_4_is_present).
const presenceAttempts = 2

// Present reports whether the target the last poll activated still
// answers. It sends an ISO/IEC 14443-4 R(NAK) through InCommunicateThru,
// the check libnfc 1.8 runs on a PN532 (pn53x_ISO14443B_4_is_present and
// pn53x_ISO14443A_4_is_present, libnfc/chips/pn53x.c): BA CID for Type B
// (the CID the firmware assigned), B2 for Type A. A card answers R(NAK)
// with R(ACK) or by sending its last block again (ISO/IEC 14443-4
// §7.5.4.2 rules 11, 12), which leaves its block number alone. Diagnose
// NumTst 06 is not used: libnfc notes it is not supported on the PN532
// for Type B and failed on a Type A JCOP card. Status 01 (no answer
// within the card's FWT) means the card is gone.
func (d *Dev) Present(ctx context.Context) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a := d.active
	if !a.ok {
		return false, errors.New("pn532: presence check without an activated target")
	}
	rnak := []byte{0xB2}
	if a.hasCID {
		rnak = []byte{0xBA, a.cid}
	}
	wait := a.fwt
	if wait <= 0 {
		wait = d.opts.PresenceTimeout
	}
	var last error
	for range presenceAttempts {
		_, err := d.communicateThru(ctx, rnak, wait)
		var se *StatusError
		switch {
		case err == nil:
			return true, nil
		case errors.As(err, &se) && se.Code == 0x01:
			return false, nil
		case errors.As(err, &se):
			last = err // damaged answer: try again
		default:
			return false, err // the chip, not the card
		}
	}
	return false, fmt.Errorf("pn532: presence check: %w", last)
}

// Deselect deselects target tg (InDeselect, S(DESELECT) to the card);
// the chip keeps it in its table for a later InSelect.
func (d *Dev) Deselect(ctx context.Context, tg byte) error {
	r, err := d.Command(ctx, cmdInDeselect, []byte{tg}, 0)
	if err != nil {
		return err
	}
	if len(r) >= 1 && r[0]&statusErrorMask != 0 {
		return &StatusError{Cmd: cmdInDeselect, Code: r[0] & statusErrorMask}
	}
	return nil
}

// BaudSetter is a Transport whose line speed the host may be able to
// change: HSU over a port that can switch (CanSetBaud).
type BaudSetter interface {
	SetBaud(baud int) error
	CanSetBaud() bool
}

// baudCodes are SetSerialBaudRate's BR values (UM0701-02 §7.2.8).
var baudCodes = map[int]byte{
	9600: 0x00, 19200: 0x01, 38400: 0x02, 57600: 0x03, 115200: 0x04,
	230400: 0x05, 460800: 0x06, 921600: 0x07, 1288000: 0x08,
}

// DefaultBaud is the HSU speed after power-on and after RSTPD_N.
const DefaultBaud = 115200

// ErrNoBaudSwitch: the transport has no line speed to change (SPI, I2C)
// or the host port cannot change it.
var ErrNoBaudSwitch = errors.New("pn532: transport cannot change its speed")

// baudSettle is how long the host waits after its ACK before it speaks
// at the new speed. UM0701-02 §7.2.8 says the chip switches once it has
// received the host's ACK but gives no duration; the ACK takes 60 µs at
// 921600 baud and the chip's UART reprogramming is a register write, so
// 1 ms is a wide margin.
const baudSettle = time.Millisecond

// SetBaud switches the HSU link to baud: SetSerialBaudRate at the old
// speed, the chip's answer, the host's ACK, then both sides switch
// (UM0701-02 §7.2.8). It then checks the link with GetFirmwareVersion at
// the new speed. If that fails the chip and host disagree: the caller
// should pulse RSTPD_N and start over at 115200.
func (d *Dev) SetBaud(ctx context.Context, baud int) error {
	code, ok := baudCodes[baud]
	if !ok {
		return fmt.Errorf("pn532: no SetSerialBaudRate code for %d baud", baud)
	}
	bs, ok := d.t.(BaudSetter)
	if !ok || !bs.CanSetBaud() {
		return ErrNoBaudSwitch
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.baud == baud {
		return nil
	}
	if _, err := d.command(ctx, cmdSetSerialBaudRate, []byte{code}, d.opts.CommandTimeout, d.opts.ACKTimeout); err != nil {
		return fmt.Errorf("pn532: SetSerialBaudRate %d: %w", baud, err)
	}
	if err := d.t.WriteFrame(ctx, ACK); err != nil {
		return err
	}
	if err := sleepCtx(ctx, baudSettle); err != nil {
		return err
	}
	if err := bs.SetBaud(baud); err != nil {
		return fmt.Errorf("pn532: host port to %d baud: %w", baud, err)
	}
	d.baud = baud
	if _, err := d.command(ctx, cmdGetFirmwareVersion, nil, d.opts.CommandTimeout, d.opts.ACKTimeout); err != nil {
		return fmt.Errorf("pn532: link check at %d baud: %w", baud, err)
	}
	d.log.Debug("pn532 link speed", "baud", baud)
	return nil
}

// Baud is the HSU speed in use (DefaultBaud until SetBaud), 0 on SPI/I2C.
func (d *Dev) Baud() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.baud
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Thru is the PN532 as an isodep.Transceiver: raw frames through
// InCommunicateThru, for the host-side ISO-DEP.
type Thru struct{ Dev *Dev }

// Transceive sends one frame and maps the chip's status to isodep's
// errors: 01 (no answer) to ErrNoResponse, CRC, parity, framing and RF
// protocol errors to ErrTransmission.
func (t Thru) Transceive(ctx context.Context, frame []byte, timeout time.Duration) ([]byte, error) {
	b, err := t.Dev.CommunicateThru(ctx, frame, timeout)
	var se *StatusError
	switch {
	case err == nil:
		return b, nil
	case errors.As(err, &se) && se.Code == 0x01:
		return nil, fmt.Errorf("%w: %w", isodep.ErrNoResponse, err)
	case errors.As(err, &se) && (se.Code == 0x02 || se.Code == 0x03 || se.Code == 0x0B || se.Code == 0x13 || se.Code == 0x04 || se.Code == 0x05 || se.Code == 0x06):
		// 02 CRC, 03 parity, 04 anticollision bit count, 05 framing,
		// 06 bit collision, 0B RF protocol, 13 format (UM0701-02 table 4).
		return nil, fmt.Errorf("%w: %w", isodep.ErrTransmission, err)
	}
	return nil, err
}

// SoftwareISODEP takes over a Type B card the firmware activated (CID 1,
// 64-byte frames towards the chip) and runs ISO/IEC 14443-4 on the host:
// S(DESELECT) with the firmware's CID (the card halts), then WUPB and the
// host's own ATTRIB with FSD 256 (drivers/isodep), all through
// InCommunicateThru. Long answers then come in 256-byte frames, a quarter
// of the RF round trips (protocols.md §1; measured by make bench).
func SoftwareISODEP(ctx context.Context, d *Dev, tb *TargetB, opts *isodep.Opts) (*isodep.Conn, error) {
	t := Thru{Dev: d}
	cid, _ := tb.cid()
	if err := isodep.DeselectCID(ctx, t, cid); err != nil {
		return nil, fmt.Errorf("pn532: deselect the firmware's session: %w", err)
	}
	conn, _, err := isodep.ActivateB(ctx, t, opts)
	if err != nil {
		return nil, fmt.Errorf("pn532: software ISO-DEP: %w", err)
	}
	return conn, nil
}
