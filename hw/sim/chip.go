package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// PN532 command codes (UM0701-02 §7).
const (
	cmdDiagnose            = 0x00
	cmdGetFirmwareVersion  = 0x02
	cmdGetGeneralStatus    = 0x04
	cmdReadRegister        = 0x06
	cmdWriteRegister       = 0x08
	cmdSetSerialBaudRate   = 0x10
	cmdSetParameters       = 0x12
	cmdSAMConfiguration    = 0x14
	cmdPowerDown           = 0x16
	cmdRFConfiguration     = 0x32
	cmdInDataExchange      = 0x40
	cmdInCommunicateThru   = 0x42
	cmdInDeselect          = 0x44
	cmdInListPassiveTarget = 0x4A
	cmdInRelease           = 0x52
	cmdInSelect            = 0x54
	cmdInAutoPoll          = 0x60
)

// Status bytes of In* answers (UM0701-02 table 4, protocols.md §1).
const (
	StatusOK           byte = 0x00
	StatusTimeout      byte = 0x01 // the target did not answer (e.g. it left the field)
	StatusWrongContext byte = 0x27 // no such target activated
	StatusMI           byte = 0x40 // more information: fetch the rest with 40 01
)

// Firmware is the GetFirmwareVersion answer after the response code: IC 32
// (PN532), version 1.6, support 07 (ISO/IEC 14443 A and B, ISO 18092).
var Firmware = []byte{0x32, 0x01, 0x06, 0x07}

// maxExchangeData is how many card bytes fit in one InDataExchange answer:
// 264 frame data bytes minus the response code and the status byte.
const maxExchangeData = 262

// ErrSyntax is returned by Chip.Process for an unknown or malformed command:
// the link answers it with the syntax error frame.
var ErrSyntax = errors.New("sim: PN532 syntax error")

// Timing sets the simulated durations. Real values are larger; these stay
// short so tests run fast.
type Timing struct {
	// Timeout is how long the chip waits for a card that does not answer
	// before it reports status 01 (the real chip waits FWT, ≈309 ms for a
	// My Number Card, times its retries). Default 30 ms.
	Timeout time.Duration
	// PollAttempt is one passive activation attempt (REQB plus settling)
	// when no card answers; InListPassiveTarget with MxRtyPassiveActivation
	// n gives up after n+1 attempts. Default 10 ms.
	PollAttempt time.Duration
	// CardAPDU is the card's processing time per APDU for the timing
	// model only (the simulator does not sleep it). Default 5 ms: an
	// assumed figure for a READ BINARY on a contactless smart card; the
	// card's datasheet gives none.
	CardAPDU time.Duration
}

func (t Timing) withDefaults() Timing {
	if t.CardAPDU <= 0 {
		t.CardAPDU = 5 * time.Millisecond
	}
	if t.Timeout <= 0 {
		t.Timeout = 30 * time.Millisecond
	}
	if t.PollAttempt <= 0 {
		t.PollAttempt = 10 * time.Millisecond
	}
	return t
}

// ChipOptions configures a Chip.
type ChipOptions struct {
	// Awake starts the chip in normal mode; by default it starts in LowVbat
	// mode like a freshly powered PN532 on HSU and needs the wake-up
	// preamble first.
	Awake  bool
	Timing Timing
	// Meter, when set, receives the modelled link, RF and chip time.
	Meter  *Meter
	Logger *slog.Logger // nil: quiet
}

// target is an entry of the chip's target table (Tg 1).
type target struct {
	seq        uint64 // Field placement that was activated
	typeA      bool   // activated by 106 kbps Type A (CID 0), else Type B (CID 1)
	deselected bool
}

// firmwareCID is the CID the firmware gives its target: 1 for Type B
// (ATTRIB with CID = Tg; libnfc pn53x_ISO14443B_4_is_present sends BA 01
// for it), 0 for Type A (libnfc pn53x_ISO14443A_4_is_present sends B2,
// "CID=0").
func (t *target) firmwareCID() byte {
	if t.typeA {
		return 0x00
	}
	return 0x01
}

// firmwareFSD is the frame size the PN532 firmware announces in ATTRIB
// (FSDI 5 = 64 bytes, protocols.md §1) and, as assumed by the model, in
// RATS (uncertain: the PN532 documents no FSDI for RATS).
const firmwareFSD = 64

// Chip is the PN532 firmware model. Process runs one command; Serve runs the
// HSU link. All methods are safe for concurrent use.
type Chip struct {
	field  *Field
	timing Timing
	meter  *Meter
	log    *slog.Logger

	mu        sync.Mutex
	regs      [0x10000]byte
	asleep    bool
	hung      bool // locked up: answers nothing on any link until Reset
	hsuWake   bool // HSU is a wake-up source
	params    byte
	rfOn      bool
	maxRetry  [3]byte // MxRtyATR, MxRtyPSL, MxRtyPassiveActivation
	timings   [3]byte // RFConfiguration item 02
	maxRtyCOM byte
	lastErr   byte
	tg        *target
	card      *picc
	hostChain []byte // InDataExchange host chaining (Tg | 0x40)
	miRest    []byte // rest of an answer sent with MI
	// miPersonal marks miRest as personal data for the frame log (doc §7).
	miPersonal bool
}

// NewChip returns a powered-on chip looking at field.
func NewChip(field *Field, opts *ChipOptions) *Chip {
	if opts == nil {
		opts = &ChipOptions{}
	}
	c := &Chip{field: field, timing: opts.Timing.withDefaults(), meter: opts.Meter, log: opts.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.reset()
	c.asleep = !opts.Awake
	return c
}

// Reset models a pulse on RSTPD_N: the chip restarts in LowVbat mode with
// power-on settings, RF off and no targets.
func (c *Chip) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reset()
}

func (c *Chip) reset() {
	clear(c.regs[:])
	c.hung = false
	// CIU values after the firmware's initialisation: CRC on, 106 kbps,
	// ISO/IEC 14443 A framing (PN532 datasheet §8.6.23).
	c.regs[regTxMode] = 0x80
	c.regs[regRxMode] = 0x80
	c.asleep, c.hsuWake = true, true
	c.params = 0
	c.rfOn = false
	c.maxRetry = [3]byte{0xFF, 0x01, 0xFF} // power-on defaults (UM0701-02 §7.3.1)
	c.timings = [3]byte{0x00, 0x0B, 0x0A}
	c.maxRtyCOM = 0
	c.lastErr = 0
	c.tg, c.card = nil, nil
	c.hostChain, c.miRest, c.miPersonal = nil, nil, false
}

// CIU registers the simulator interprets.
const (
	regTxMode = 0x6302
	regRxMode = 0x6303
)

// Hang makes the chip lock up the way cheap PN532 boards do after hours of
// polling: it stops answering (no ACK, no response) on every link until
// Reset, the RSTPD_N pulse.
func (c *Chip) Hang() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hung = true
}

// Hung reports whether the chip is locked up (see Hang).
func (c *Chip) Hung() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hung
}

// Meter returns the chip's meter (nil when none was given).
func (c *Chip) Meter() *Meter { return c.meter }

// Asleep reports whether the chip is in LowVbat or PowerDown mode.
func (c *Chip) Asleep() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.asleep
}

// wakeByHSU wakes the chip on HSU activity when HSU is a wake-up source.
func (c *Chip) wakeByHSU() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.asleep && c.hsuWake {
		c.asleep = false
	}
	return !c.asleep
}

// ChipState is a snapshot of the chip for status reports.
type ChipState struct {
	Asleep    bool   // LowVbat or PowerDown
	RF        bool   // RF field on
	Target    bool   // a target is activated (Tg 1)
	CardState string // ISO/IEC 14443-3 state of the card on the field, "" when none
}

// State returns a snapshot of the chip.
func (c *Chip) State() ChipState {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := ChipState{Asleep: c.asleep, RF: c.rfOn, Target: c.tg != nil}
	if p := c.syncCard(); p != nil && p.powered {
		s.CardState = p.state.String()
	}
	return s
}

// syncCard returns the card-side state of the card on the field, powering
// it up when the RF field is on. c.mu must be held.
func (c *Chip) syncCard() *picc {
	card, seq, _ := c.field.current()
	if card == nil {
		c.card = nil
		return nil
	}
	if c.card == nil || c.card.seq != seq {
		c.card = &picc{seq: seq, card: card}
	}
	if !c.rfOn {
		c.card.powered, c.card.state = false, piccIdle
	} else if !c.card.powered {
		card.PowerOn()
		c.card.powered, c.card.state = true, piccIdle
	}
	return c.card
}

// setRF switches the RF field. c.mu must be held.
func (c *Chip) setRF(on bool) {
	c.rfOn = on
	c.syncCard()
}

// Process runs one command. cmd is the data of a host information frame
// (command code first, without the TFI D4); the result is the response data
// (response code first, without the TFI D5). It returns ErrSyntax for a
// command the link must answer with the syntax error frame, and ctx's error
// when the host aborted the command.
func (c *Chip) Process(ctx context.Context, cmd []byte) ([]byte, error) {
	out, _, err := c.process(ctx, cmd)
	return out, err
}

// process is Process that also reports whether the answer carries card
// data that the frame log must mask (personal data, doc §7).
func (c *Chip) process(ctx context.Context, cmd []byte) (out []byte, personal bool, err error) {
	if len(cmd) == 0 {
		return nil, false, ErrSyntax
	}
	switch cmd[0] {
	case cmdInDataExchange:
		return c.inDataExchange(ctx, cmd[1:])
	case cmdInCommunicateThru:
		return c.inCommunicateThru(ctx, cmd[1:])
	}
	out, err = c.command(ctx, cmd)
	return out, false, err
}

// command runs every command but InDataExchange and InCommunicateThru.
func (c *Chip) command(ctx context.Context, cmd []byte) ([]byte, error) {
	args := cmd[1:]
	switch cmd[0] {
	case cmdDiagnose:
		return c.diagnose(ctx, args)
	case cmdGetFirmwareVersion:
		return append([]byte{0x03}, Firmware...), nil
	case cmdGetGeneralStatus:
		return c.generalStatus(), nil
	case cmdReadRegister:
		return c.readRegister(args)
	case cmdWriteRegister:
		return c.writeRegister(args)
	case cmdSetSerialBaudRate:
		// The answer goes out at the old speed; the HSU link switches after
		// the host's ACK (link.go, UM0701-02 §7.2.8). SPI and I2C ignore it.
		if len(args) != 1 || args[0] > 0x08 {
			return nil, ErrSyntax
		}
		return []byte{0x11}, nil
	case cmdSetParameters:
		if len(args) != 1 {
			return nil, ErrSyntax
		}
		c.mu.Lock()
		c.params = args[0]
		c.mu.Unlock()
		return []byte{0x13}, nil
	case cmdSAMConfiguration:
		if len(args) < 1 || len(args) > 3 || args[0] < 1 || args[0] > 4 {
			return nil, ErrSyntax
		}
		return []byte{0x15}, nil
	case cmdPowerDown:
		return c.powerDown(args)
	case cmdRFConfiguration:
		return c.rfConfiguration(args)
	case cmdInListPassiveTarget:
		return c.inListPassiveTarget(ctx, args)
	case cmdInAutoPoll:
		return c.inAutoPoll(ctx, args)
	case cmdInDeselect:
		return c.inDeselect(args)
	case cmdInRelease:
		return c.inRelease(args)
	case cmdInSelect:
		return c.inSelect(args)
	}
	return nil, ErrSyntax
}

func (c *Chip) diagnose(ctx context.Context, args []byte) ([]byte, error) {
	if len(args) == 0 {
		return nil, ErrSyntax
	}
	switch args[0] {
	case 0x00: // communication line test: echo NumTst and InParam
		return append([]byte{0x01}, args...), nil
	case 0x01, 0x02, 0x07: // ROM, RAM, antenna self tests: all good
		return []byte{0x01, 0x00}, nil
	case 0x04: // polling test: number of failures out of 128
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.targetReachable() {
			return []byte{0x01, 0x00}, nil
		}
		return []byte{0x01, 0x80}, nil
	case 0x06: // card presence ("attention request") of the activated target
		// libnfc 1.8 uses NumTst 06 only on the PN533: on a PN532 it is
		// "not supported [for Type B] even if the doc is same as for
		// PN533" and "failed completely with a JCOP31" for Type A
		// (pn53x_ISO14443B_4_is_present, pn53x_ISO14443A_4_is_present,
		// libnfc/chips/pn53x.c). What a PN532 then answers is not
		// documented (uncertain); the model answers "present" whatever the
		// field holds, so a host that relies on it never sees a removal,
		// and a test of such a host fails instead of passing by luck.
		c.mu.Lock()
		listed := c.tg != nil
		c.mu.Unlock()
		if !listed {
			return []byte{0x01, StatusWrongContext}, nil
		}
		return []byte{0x01, StatusOK}, nil
	}
	return nil, ErrSyntax
}

// targetReachable reports whether the listed target is still the powered
// card on the field. c.mu must be held.
func (c *Chip) targetReachable() bool {
	p := c.syncCard()
	return c.tg != nil && p != nil && p.powered && p.seq == c.tg.seq
}

func (c *Chip) generalStatus() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []byte{0x05, c.lastErr, 0x00} // Err, Field (no external field)
	if c.tg != nil {
		// Tg, BrRx 106, BrTx 106, modulation type 00 (ISO/IEC 14443 at 106 kbps)
		out = append(out, 0x01, 0x01, 0x00, 0x00, 0x00)
	} else {
		out = append(out, 0x00)
	}
	return append(out, 0x00) // SAM status
}

func (c *Chip) readRegister(args []byte) ([]byte, error) {
	if len(args) == 0 || len(args)%2 != 0 {
		return nil, ErrSyntax
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []byte{0x07}
	for i := 0; i < len(args); i += 2 {
		out = append(out, c.regs[int(args[i])<<8|int(args[i+1])])
	}
	return out, nil
}

func (c *Chip) writeRegister(args []byte) ([]byte, error) {
	if len(args) == 0 || len(args)%3 != 0 {
		return nil, ErrSyntax
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; i < len(args); i += 3 {
		c.regs[int(args[i])<<8|int(args[i+1])] = args[i+2]
	}
	return []byte{0x09}, nil
}

func (c *Chip) powerDown(args []byte) ([]byte, error) {
	if len(args) < 1 || len(args) > 2 {
		return nil, ErrSyntax
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setRF(false)
	c.tg, c.hostChain, c.miRest, c.miPersonal = nil, nil, nil, false
	c.asleep = true
	c.hsuWake = args[0]&0x10 != 0
	return []byte{0x17, StatusOK}, nil
}

func (c *Chip) rfConfiguration(args []byte) ([]byte, error) {
	if len(args) < 1 {
		return nil, ErrSyntax
	}
	item, data := args[0], args[1:]
	want := map[byte]int{0x01: 1, 0x02: 3, 0x04: 1, 0x05: 3, 0x0A: 11, 0x0B: 8, 0x0C: 3, 0x0D: 9}
	n, ok := want[item]
	if !ok || len(data) != n {
		return nil, ErrSyntax
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch item {
	case 0x01:
		c.setRF(data[0]&0x01 != 0)
	case 0x02:
		copy(c.timings[:], data)
	case 0x04:
		c.maxRtyCOM = data[0]
	case 0x05:
		copy(c.maxRetry[:], data)
	}
	return []byte{0x33}, nil
}

// setFraming sets the CIU Tx/Rx framing bits: 0 = ISO/IEC 14443 A,
// 3 = ISO/IEC 14443 B. c.mu must be held.
func (c *Chip) setFraming(f byte) {
	c.regs[regTxMode] = c.regs[regTxMode]&^0x03 | f
	c.regs[regRxMode] = c.regs[regRxMode]&^0x03 | f
}

// tryActivateB runs REQB + ATTRIB (CID 1, FSD 64) like the PN532 firmware
// and returns the target data (Tg first). c.mu must be held.
func (c *Chip) tryActivateB(afi byte) []byte {
	p := c.syncCard()
	if p == nil || !p.powered || !p.wake(afi, false) {
		return nil
	}
	p.activate(0x01, firmwareFSD)
	info := p.typeB().TypeB()
	c.tg = &target{seq: p.seq}
	// REQB (3 + CRC) → ATQB (12 + CRC), ATTRIB (9 + CRC) → answer (1 + CRC).
	c.meter.RF(5, 14, RFRoundTrip(false, 5, 14, 0))
	c.meter.RF(11, 3, RFRoundTrip(false, 11, 3, 0))
	out := []byte{0x01, 0x50}
	out = append(out, info.Bytes()...)
	return append(out, 0x01, p.cid) // ATTRIB_RES length, MBLI 0 | CID
}

// tryActivateA runs the Type A activation the PN532 firmware does in
// InListPassiveTarget 106A: REQA, anticollision, SELECT and, when SAK
// announces ISO/IEC 14443-4, RATS (UM0701-02 §7.3.5), and returns the
// target data (Tg first): Tg SENS_RES(2) SEL_RES NFCIDLength NFCID1 [ATS].
// c.mu must be held.
func (c *Chip) tryActivateA() []byte {
	p := c.syncCard()
	if p == nil || !p.powered || !p.wakeA(false) {
		return nil
	}
	a := p.typeA().TypeA()
	c.tg = &target{seq: p.seq, typeA: true}
	out := []byte{0x01, a.ATQA[0], a.ATQA[1], a.SAK, byte(len(a.UID))}
	out = append(out, a.UID...)
	// REQA → ATQA, one anticollision + SELECT per cascade level, RATS → ATS.
	c.meter.RF(1, 2, RFRoundTrip(true, 1, 2, 0))
	for range (len(a.UID) + 2) / 3 {
		c.meter.RF(2, 5, RFRoundTrip(true, 2, 5, 0))
		c.meter.RF(9, 3, RFRoundTrip(true, 9, 3, 0))
	}
	if a.SAK&0x20 != 0 {
		p.activate(0x00, firmwareFSD)
		c.meter.RF(4, len(a.ATS)+2, RFRoundTrip(true, 4, len(a.ATS)+2, 0))
		out = append(out, a.ATS...)
	} else {
		p.state = piccReady // ISO/IEC 14443-3 only: no blocks
	}
	return out
}

// releaseAll forgets listed targets. c.mu must be held.
func (c *Chip) releaseAll() {
	c.tg, c.hostChain, c.miRest, c.miPersonal = nil, nil, nil, false
}

func (c *Chip) inListPassiveTarget(ctx context.Context, args []byte) ([]byte, error) {
	if len(args) < 2 || args[0] < 1 || args[0] > 2 || args[1] > 0x04 {
		return nil, ErrSyntax
	}
	brTy, init := args[1], args[2:]
	if brTy == 0x03 && len(init) < 1 {
		return nil, ErrSyntax // AFI is mandatory for Type B
	}
	c.mu.Lock()
	c.releaseAll()
	c.setRF(true)
	if brTy == 0x03 {
		c.setFraming(0x03)
	} else {
		c.setFraming(0x00)
	}
	retries := c.maxRetry[2]
	c.mu.Unlock()

	for attempt := 0; ; attempt++ {
		_, _, changed := c.field.current()
		var data []byte
		c.mu.Lock()
		switch brTy {
		case 0x03:
			data = c.tryActivateB(init[0])
		case 0x00:
			data = c.tryActivateA()
		}
		c.lastErr = 0
		c.mu.Unlock()
		if data != nil {
			return append([]byte{0x4B, 0x01}, data...), nil
		}
		// FeliCa and Jewel targets are not simulated: they never answer.
		// A failed attempt costs PollAttempt; waiting forever, a card's
		// arrival ends the wait at once.
		if retries != 0xFF {
			changed = nil
		}
		t := time.NewTimer(c.timing.PollAttempt)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("sim: InListPassiveTarget: %w", ctx.Err())
		case <-changed:
			t.Stop()
		case <-t.C:
		}
		if retries != 0xFF && attempt >= int(retries) {
			return []byte{0x4B, 0x00}, nil
		}
	}
}

func (c *Chip) inAutoPoll(ctx context.Context, args []byte) ([]byte, error) {
	if len(args) < 3 || args[0] == 0 || args[1] < 1 || args[1] > 0x0F || len(args) > 2+15 {
		return nil, ErrSyntax
	}
	pollNr, types := args[0], args[2:]
	c.mu.Lock()
	c.releaseAll()
	c.setRF(true)
	c.mu.Unlock()
	for round := 0; pollNr == 0xFF || round < int(pollNr); round++ {
		_, _, changed := c.field.current()
		for _, ty := range types {
			if ty != 0x03 && ty != 0x23 { // ISO/IEC 14443-3B / -4B at 106 kbps
				continue
			}
			c.mu.Lock()
			c.setFraming(0x03)
			data := c.tryActivateB(0x00)
			c.mu.Unlock()
			if data != nil {
				return append([]byte{0x61, 0x01, ty, byte(len(data))}, data...), nil
			}
		}
		// One round per PollAttempt instead of Period × 150 ms, to keep
		// tests fast.
		t := time.NewTimer(c.timing.PollAttempt)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("sim: InAutoPoll: %w", ctx.Err())
		case <-changed:
			t.Stop()
		case <-t.C:
		}
	}
	return []byte{0x61, 0x00}, nil
}

// silence waits the simulated timeout of a card that does not answer.
func (c *Chip) silence(ctx context.Context) error {
	t := time.NewTimer(c.timing.Timeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("sim: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}

// status builds a one-status answer and records the status for
// GetGeneralStatus. c.mu must be held.
func (c *Chip) status(code, st byte) []byte {
	c.lastErr = st & 0x3F
	return []byte{code, st}
}

func (c *Chip) inDataExchange(ctx context.Context, args []byte) ([]byte, bool, error) {
	if len(args) < 1 {
		return nil, false, ErrSyntax
	}
	tg, payload := args[0], args[1:]
	c.mu.Lock()
	if c.tg == nil || tg&0x3F != 0x01 {
		defer c.mu.Unlock()
		return c.status(0x41, StatusWrongContext), false, nil
	}
	if len(c.miRest) > 0 && len(payload) == 0 { // fetch the rest of an MI answer
		defer c.mu.Unlock()
		return c.chunk(), c.miPersonal, nil
	}
	c.miRest, c.miPersonal = nil, false
	p := c.syncCard()
	if !c.targetReachable() {
		c.mu.Unlock()
		out, err := c.timeout(ctx, 0x41)
		return out, false, err
	}
	if c.tg.deselected || p.state != piccActive || p.cid != c.tg.firmwareCID() {
		// The firmware reselects a deselected target (WUPB + ATTRIB, or
		// WUPA + SELECT + RATS); a card activated by someone else does not
		// answer the firmware's CID.
		if !c.tg.deselected || !c.rewake(p) {
			c.mu.Unlock()
			out, err := c.timeout(ctx, 0x41)
			return out, false, err
		}
		p.activate(c.tg.firmwareCID(), firmwareFSD)
		c.tg.deselected = false
	}
	if tg&0x40 != 0 { // host chaining: the card acknowledges each chunk
		c.hostChain = append(c.hostChain, payload...)
		defer c.mu.Unlock()
		return c.status(0x41, StatusOK), false, nil
	}
	apdu := append(c.hostChain, payload...)
	c.hostChain = nil
	seq, typeA, fsc := c.tg.seq, c.tg.typeA, c.cardFSC(p)
	c.mu.Unlock()

	resp, personal, ok, err := c.field.transmit(ctx, seq, apdu)
	blocks, lastINF := c.meterFirmwareISODEP(typeA, fsc, len(apdu), resp, ok && err == nil)
	c.mu.Lock()
	if ok && err == nil && c.card != nil && c.card.seq == seq {
		c.card.firmwareExchange(blocks, lastINF, personal)
	}
	c.mu.Unlock()
	if err != nil && ctx.Err() != nil {
		return nil, false, fmt.Errorf("sim: InDataExchange: %w", ctx.Err())
	}
	if !ok || err != nil {
		if err != nil {
			c.log.Warn("card failed", "err", err)
		}
		out, err := c.timeout(ctx, 0x41)
		return out, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.miRest, c.miPersonal = resp, personal
	return c.chunk(), personal, nil
}

// chunk sends the next piece of c.miRest, with MI when more follows.
// c.mu must be held.
func (c *Chip) chunk() []byte {
	part := c.miRest
	st := StatusOK
	if len(part) > maxExchangeData {
		part, st = part[:maxExchangeData], StatusMI
	}
	c.miRest = c.miRest[len(part):]
	out := c.status(0x41, st)
	return append(out, part...)
}

// timeout waits like a chip whose card stays silent and answers status 01.
func (c *Chip) timeout(ctx context.Context, code byte) ([]byte, error) {
	if err := c.silence(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status(code, StatusTimeout), nil
}

func (c *Chip) inCommunicateThru(ctx context.Context, args []byte) ([]byte, bool, error) {
	c.mu.Lock()
	var (
		out      []byte
		personal bool
	)
	tx, rx := c.regs[regTxMode]&0x03, c.regs[regRxMode]&0x03
	framingA := tx == 0x00 && rx == 0x00
	if len(args) > 0 && (framingA || tx == 0x03 && rx == 0x03) {
		if p := c.syncCard(); p != nil {
			out = p.frame(ctx, c.field, args, framingA)
			personal = p.outPersonal
			if p.ranAPDU {
				c.meter.APDU()
				c.meter.Wait(c.timing.CardAPDU)
			}
			if c.tg != nil && (p.state != piccActive || p.cid != c.tg.firmwareCID()) {
				c.tg.deselected = true // the host took the card away from the firmware
			}
		}
	}
	if out != nil {
		c.meter.RF(len(args)+2, len(out)+2, RFRoundTrip(framingA, len(args)+2, len(out)+2, 0))
		defer c.mu.Unlock()
		return append(c.status(0x43, StatusOK), out...), personal, nil
	}
	// The chip sent the frame and waited fRetryTimeout for an answer
	// (RFConfiguration item 02, UM0701-02 §7.3.1).
	if len(args) > 0 {
		c.meter.RF(len(args)+2, 0, RFFrameTypeB(len(args)+2))
	}
	c.meter.Wait(retryTimeout(c.timings[2]))
	c.mu.Unlock()
	out, err := c.timeout(ctx, 0x43)
	return out, false, err
}

// retryTimeout decodes an RFConfiguration item 02 timeout code:
// 100 µs × 2^(n-1), 0 = no timeout (UM0701-02 §7.3.1).
func retryTimeout(code byte) time.Duration {
	if code == 0 || code > 0x10 {
		return 0
	}
	return 100 * time.Microsecond << (code - 1)
}

// rewake wakes a halted card for the firmware's reselection. c.mu must be
// held.
func (c *Chip) rewake(p *picc) bool {
	if c.tg.typeA {
		return p.wakeA(true)
	}
	return p.wake(0x00, true)
}

// cardFSC is the largest frame the activated card accepts. c.mu must be
// held.
func (c *Chip) cardFSC(p *picc) int {
	if tb := p.typeB(); tb != nil && !c.tg.typeA {
		return tb.TypeB().FSC()
	}
	if ta := p.typeA(); ta != nil && len(ta.TypeA().ATS) >= 2 && ta.TypeA().ATS[0] >= 2 {
		return frameSize(ta.TypeA().ATS[1] & 0x0F)
	}
	return 32 // FSCI default 2 (ISO/IEC 14443-4 §5.2.3)
}

// meterFirmwareISODEP adds the RF traffic of one APDU carried by the
// firmware's ISO-DEP: the command in I-blocks of at most the card's FSC,
// each but the last acknowledged by the card's R(ACK); the answer in
// I-blocks of at most the firmware's FSD of 64, each but the last
// acknowledged by the chip's R(ACK) (ISO/IEC 14443-4 §7.5.2 chaining). A
// block is PCB, CID when used, INF and CRC (2).
//
// It returns how many blocks the card received (I-blocks and R(ACK)s:
// each toggles its block number, ISO/IEC 14443-4 §7.5.4.2 rules D and 13)
// and the INF of the last I-block it sent, so that the card-side state
// matches a firmware exchange for a later R(NAK).
func (c *Chip) meterFirmwareISODEP(typeA bool, fsc, cmd int, respAPDU []byte, answered bool) (blocks int, lastINF []byte) {
	resp := len(respAPDU)
	hdr := 2 // PCB + CID (Type B, CID 1)
	if typeA {
		hdr = 1 // PCB (CID 0, not sent)
	}
	const crc = 2
	ack := hdr + crc
	cmdRoom := max(fsc-hdr-crc, 1)
	respRoom := firmwareFSD - hdr - crc
	k := max((cmd+cmdRoom-1)/cmdRoom, 1)
	for range k - 1 {
		c.meter.RF(hdr+cmdRoom+crc, ack, RFRoundTrip(typeA, hdr+cmdRoom+crc, ack, 0))
	}
	last := cmd - (k-1)*cmdRoom
	if !answered {
		c.meter.RF(hdr+last+crc, 0, RFFrameTypeB(hdr+last+crc))
		c.meter.Wait(retryTimeout(c.timings[2]))
		return k, nil
	}
	c.meter.APDU()
	c.meter.Wait(c.timing.CardAPDU)
	j := max((resp+respRoom-1)/respRoom, 1)
	first := min(resp, respRoom)
	c.meter.RF(hdr+last+crc, hdr+first+crc, RFRoundTrip(typeA, hdr+last+crc, hdr+first+crc, 0))
	for i := 1; i < j; i++ {
		n := min(resp-i*respRoom, respRoom)
		c.meter.RF(ack, hdr+n+crc, RFRoundTrip(typeA, ack, hdr+n+crc, 0))
	}
	return k + j - 1, respAPDU[(j-1)*respRoom:]
}

func (c *Chip) inDeselect(args []byte) ([]byte, error) {
	if len(args) != 1 {
		return nil, ErrSyntax
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if args[0] != 0 && (c.tg == nil || args[0] != 0x01) {
		return c.status(0x45, StatusWrongContext), nil
	}
	c.deselect()
	return c.status(0x45, StatusOK), nil
}

// deselect sends S(DESELECT) to the listed target. c.mu must be held.
func (c *Chip) deselect() {
	if c.tg == nil {
		return
	}
	c.tg.deselected = true
	if c.targetReachable() && c.card.state == piccActive && c.card.cid == c.tg.firmwareCID() {
		c.card.state = piccHalt
	}
	c.hostChain, c.miRest, c.miPersonal = nil, nil, false
}

func (c *Chip) inRelease(args []byte) ([]byte, error) {
	if len(args) != 1 {
		return nil, ErrSyntax
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if args[0] != 0 && (c.tg == nil || args[0] != 0x01) {
		return c.status(0x53, StatusWrongContext), nil
	}
	c.deselect()
	c.releaseAll()
	return c.status(0x53, StatusOK), nil
}

func (c *Chip) inSelect(args []byte) ([]byte, error) {
	if len(args) != 1 {
		return nil, ErrSyntax
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tg == nil || args[0] != 0x01 {
		return c.status(0x55, StatusWrongContext), nil
	}
	if !c.targetReachable() {
		return c.status(0x55, StatusTimeout), nil
	}
	p := c.card
	if p.state != piccActive || p.cid != c.tg.firmwareCID() {
		if !c.rewake(p) {
			return c.status(0x55, StatusTimeout), nil
		}
		p.activate(c.tg.firmwareCID(), firmwareFSD)
	}
	c.tg.deselected = false
	return c.status(0x55, StatusOK), nil
}
