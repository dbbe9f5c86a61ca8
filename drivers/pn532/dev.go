package pn532

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kazashi/kazashi/drivers/iso7816"
	"github.com/kazashi/kazashi/drivers/isodep"
)

// Command codes (UM0701-02 chapter 7).
const (
	cmdDiagnose              byte = 0x00
	cmdGetFirmwareVersion    byte = 0x02
	cmdSAMConfiguration      byte = 0x14
	cmdRFConfiguration       byte = 0x32
	cmdSetSerialBaudRate     byte = 0x10
	cmdInDataExchange        byte = 0x40
	cmdInCommunicateThru     byte = 0x42
	cmdInDeselect            byte = 0x44
	cmdInListPassiveTarget   byte = 0x4A
	cmdInRelease             byte = 0x52
	rfItemField              byte = 0x01
	rfItemTimings            byte = 0x02
	rfItemMaxRetries         byte = 0x05
	rfItemAnalogTypeB        byte = 0x0C
	brTy106A                 byte = 0x00
	brTy106B                 byte = 0x03
	statusMoreInformation    byte = 0x40
	statusErrorMask          byte = 0x3F
	tgChaining               byte = 0x40
	maxDataOut                    = 262 // InDataExchange DataOut limit
	maxChainedResponseFrames      = 64  // bounds MI chaining from a misbehaving chip
)

// Errors callers branch on.
var (
	// ErrNoACK: the chip did not acknowledge a command in time.
	ErrNoACK = errors.New("pn532: no ACK from chip")
	// ErrTimeout: the host deadline passed before the response; the command
	// was aborted with ACK.
	ErrTimeout = errors.New("pn532: command timed out")
	// ErrSyntax: the chip answered with the error frame.
	ErrSyntax = errors.New("pn532: chip reported a syntax error")
	// ErrNoTarget: polling found no card.
	ErrNoTarget = errors.New("pn532: no target in the field")
	// ErrUnsupported: the chip is not a PN532 with Type B support.
	ErrUnsupported = errors.New("pn532: unsupported chip")
	// ErrResponse: a response too short or otherwise malformed.
	ErrResponse = errors.New("pn532: malformed response")
	// ErrNotISODEP: the target does not declare ISO/IEC 14443-4 support,
	// so it cannot carry APDUs.
	ErrNotISODEP = errors.New("pn532: target does not support ISO/IEC 14443-4")
	// ErrTargetLost is iso7816.ErrCardLost: the card left the field.
	ErrTargetLost = iso7816.ErrCardLost
)

// StatusError is a non-zero status byte in an In* command response.
type StatusError struct {
	Cmd  byte
	Code byte
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("pn532: command %02X status %02X (%s)", e.Cmd, e.Code, statusText(e.Code))
}

// Is makes errors.Is(err, ErrTargetLost) true for the codes that mean the
// card is gone: timeout (no answer), released, Type B card disappeared.
func (e *StatusError) Is(target error) bool {
	if target != ErrTargetLost {
		return false
	}
	switch e.Code {
	case 0x01, 0x29, 0x2A, 0x2B:
		return true
	}
	return false
}

func statusText(c byte) string {
	switch c {
	case 0x01:
		return "timeout"
	case 0x02:
		return "CRC error"
	case 0x03:
		return "parity error"
	case 0x0A:
		return "RF field error"
	case 0x0B:
		return "RF protocol error"
	case 0x13:
		return "format error"
	case 0x27:
		return "wrong context"
	case 0x29:
		return "target released"
	case 0x2A:
		return "Type B card ID mismatch"
	case 0x2B:
		return "Type B card disappeared"
	case 0x7F:
		return "syntax error"
	}
	return "error"
}

// Opts configures a Dev.
type Opts struct {
	// ACKTimeout bounds the wait for the chip's ACK. The datasheet gives
	// ≤ 15 ms; field boards and USB-UART bridges need more.
	ACKTimeout time.Duration
	// FirstACKTimeout is used for the first command after wake-up, while
	// the chip's oscillator settles.
	FirstACKTimeout time.Duration
	// CommandTimeout bounds local commands and polling.
	CommandTimeout time.Duration
	// ExchangeTimeout bounds one InDataExchange, card processing included
	// (a JPKI card has FWT ≈ 309 ms and may extend it with WTX).
	ExchangeTimeout time.Duration
	// PresenceTimeout bounds the card presence check; the chip takes a few
	// hundred ms to answer when the card has gone.
	PresenceTimeout time.Duration
	// MaxRetries is MxRtyPassiveActivation: how many times the chip retries
	// activation before InListPassiveTarget answers "no target". Never FF
	// (forever) in a daemon: the chip would hold the line.
	MaxRetries byte
	// TypeBAnalog, when set, is written as RFConfiguration item 0C (analog
	// settings for 106 kbps Type B: GsNOn, ModGsP, RxThresholdB).
	TypeBAnalog []byte
	// Logger gets frame-level debug logs. Nil means quiet.
	Logger *slog.Logger
}

// DefaultOpts are sensible for a PN532 breakout on a Raspberry Pi UART.
var DefaultOpts = Opts{
	ACKTimeout:      100 * time.Millisecond,
	FirstACKTimeout: 500 * time.Millisecond,
	CommandTimeout:  1 * time.Second,
	ExchangeTimeout: 3 * time.Second,
	PresenceTimeout: 700 * time.Millisecond,
	MaxRetries:      0x02,
	TypeBAnalog:     []byte{0xFF, 0x04, 0x85},
}

// Firmware is the GetFirmwareVersion answer.
type Firmware struct {
	IC, Ver, Rev, Support byte
}

func (f Firmware) String() string {
	return fmt.Sprintf("PN5%02X v%d.%d (support %02X)", f.IC, f.Ver, f.Rev, f.Support)
}

// Dev is a PN532 on a Transport. Its methods are safe for concurrent use;
// commands run one at a time.
type Dev struct {
	mu   sync.Mutex
	t    Transport
	opts Opts
	fw   Firmware
	log  *slog.Logger
	// active is the target the last successful poll activated, for the
	// presence check (its R(NAK) depends on the technology and CID).
	active activeTarget
	// retryTimeout is the RFConfiguration item 02 fRetryTimeout code in
	// effect (0: not set by us since initialisation; the chip's default).
	retryTimeout byte
	baud         int
	// stale: a command was aborted; its answer may still arrive (the chip
	// had finished before our ACK reached it) and must be drained before
	// the next command, or a command with the same response code would
	// take it for its own.
	stale bool
}

// New wakes the chip, aborts anything a previous host left running,
// drains stale frames, configures the SAM (first command after wake-up),
// checks the firmware and sets finite activation retries. It fails fast
// when no PN532 answers.
func New(ctx context.Context, t Transport, opts *Opts) (*Dev, error) {
	o := DefaultOpts
	if opts != nil {
		o = *opts
	}
	d := &Dev{t: t, opts: o, log: o.Logger}
	if _, ok := t.(*UART); ok {
		d.baud = DefaultBaud // the chip's HSU speed after power-on and reset
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if err := d.init(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Dev) init(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.t.Wake(ctx); err != nil {
		return err
	}
	if err := d.t.WriteFrame(ctx, ACK); err != nil {
		return err
	}
	if err := d.t.Drain(ctx); err != nil {
		return err
	}
	// SAMConfiguration: normal mode, virtual-card timeout 0x14 (1 s), IRQ
	// in use. It must be the first command after LowVbat wake-up; the first
	// ACK may be lost while the chip starts, so retry once.
	if _, err := d.retry(ctx, cmdSAMConfiguration, []byte{0x01, 0x14, 0x01}, d.opts.FirstACKTimeout); err != nil {
		return fmt.Errorf("pn532: SAMConfiguration: %w", err)
	}
	r, err := d.retry(ctx, cmdGetFirmwareVersion, nil, d.opts.ACKTimeout)
	if err != nil {
		return fmt.Errorf("pn532: GetFirmwareVersion: %w", err)
	}
	if len(r) < 4 {
		return fmt.Errorf("%w: firmware version % X", ErrResponse, r)
	}
	d.fw = Firmware{IC: r[0], Ver: r[1], Rev: r[2], Support: r[3]}
	if d.fw.IC != 0x32 || d.fw.Support&0x02 == 0 {
		return fmt.Errorf("%w: %v", ErrUnsupported, d.fw)
	}
	if _, err := d.command(ctx, cmdRFConfiguration, []byte{rfItemMaxRetries, 0x00, 0x01, d.opts.MaxRetries}, d.opts.CommandTimeout, d.opts.ACKTimeout); err != nil {
		return fmt.Errorf("pn532: RFConfiguration MaxRetries: %w", err)
	}
	if len(d.opts.TypeBAnalog) == 3 {
		if _, err := d.command(ctx, cmdRFConfiguration, append([]byte{rfItemAnalogTypeB}, d.opts.TypeBAnalog...), d.opts.CommandTimeout, d.opts.ACKTimeout); err != nil {
			return fmt.Errorf("pn532: RFConfiguration Type B analog: %w", err)
		}
	}
	// Drop the RF field, as libnfc does before it polls ("Drop the field
	// for a while", libnfc examples/doc/quick_start_example1.c): a card a
	// previous host (a crash, a reset of ours) left selected stays in the
	// ACTIVE state while the field stays on and never answers REQB again
	// (ISO/IEC 14443-3 §7.4: only a field reset returns it to IDLE). The
	// next InListPassiveTarget switches the field on again.
	if _, err := d.command(ctx, cmdRFConfiguration, []byte{rfItemField, 0x00}, d.opts.CommandTimeout, d.opts.ACKTimeout); err != nil {
		return fmt.Errorf("pn532: RFConfiguration field off: %w", err)
	}
	t := time.NewTimer(fieldReset)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	d.log.Debug("pn532 ready", "firmware", d.fw.String())
	return nil
}

// fieldReset is how long the field stays off at initialisation: twice the
// 5 ms a PICC may take to notice a field reset (ISO/IEC 14443-3 t_RESET).
const fieldReset = 10 * time.Millisecond

// retry runs an idempotent command, once more if the ACK did not come.
func (d *Dev) retry(ctx context.Context, cmd byte, params []byte, ackTimeout time.Duration) ([]byte, error) {
	r, err := d.command(ctx, cmd, params, d.opts.CommandTimeout, ackTimeout)
	if errors.Is(err, ErrNoACK) || errors.Is(err, ErrTimeout) {
		if derr := d.t.Drain(ctx); derr != nil {
			return nil, derr
		}
		r, err = d.command(ctx, cmd, params, d.opts.CommandTimeout, ackTimeout)
	}
	return r, err
}

// Firmware returns what the chip reported at New.
func (d *Dev) Firmware() Firmware { return d.fw }

func (d *Dev) String() string { return "pn532 " + d.fw.String() }

// Command runs one command and returns the response data after the
// response code. timeout bounds the wait for the response (0 means
// CommandTimeout).
func (d *Dev) Command(ctx context.Context, cmd byte, params []byte, timeout time.Duration) ([]byte, error) {
	if timeout == 0 {
		timeout = d.opts.CommandTimeout
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.command(ctx, cmd, params, timeout, d.opts.ACKTimeout)
}

// command runs command → ACK → response. On a host deadline it sends ACK,
// which makes the chip abandon the command.
func (d *Dev) command(ctx context.Context, cmd byte, params []byte, timeout, ackTimeout time.Duration) ([]byte, error) {
	frame, err := Encode(TFIHost, append([]byte{cmd}, params...))
	if err != nil {
		return nil, err
	}
	if d.stale {
		if err := d.t.Drain(ctx); err != nil {
			return nil, err
		}
		d.stale = false
	}
	d.log.Debug("pn532 >", "cmd", loggable(append([]byte{cmd}, params...)))
	// Until its response is read, the command's ACK or answer may still
	// come: whatever ends the wait early (a deadline, a cancelled ctx, a
	// bad frame) leaves the line to be drained before the next command.
	answered := false
	defer func() {
		if !answered {
			d.stale = true
		}
	}()
	if err := d.t.WriteFrame(ctx, frame); err != nil {
		return nil, err
	}
	if err := d.waitACK(ctx, cmd, ackTimeout); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nacks := 0
	for {
		f, err := d.t.ReadFrame(rctx)
		switch {
		case errors.Is(err, ErrChecksum) || errors.Is(err, ErrLength):
			// Ask the chip to send its response again (NACK), twice at most.
			if nacks++; nacks > 2 {
				d.abort(ctx)
				return nil, fmt.Errorf("pn532: command %02X: %w", cmd, err)
			}
			if werr := d.t.WriteFrame(ctx, NACK); werr != nil {
				return nil, werr
			}
			continue
		case err != nil:
			if rctx.Err() != nil {
				d.abort(ctx)
				if ctx.Err() != nil {
					return nil, fmt.Errorf("pn532: command %02X: %w", cmd, ctx.Err())
				}
				return nil, fmt.Errorf("%w: command %02X after %v", ErrTimeout, cmd, timeout)
			}
			return nil, err
		}
		switch f.Kind {
		case KindError:
			answered = true
			return nil, fmt.Errorf("%w (command %02X)", ErrSyntax, cmd)
		case KindInfo:
			if f.TFI == TFIChip && len(f.Data) > 0 && f.Data[0] == cmd+1 {
				d.log.Debug("pn532 <", "data", loggable(f.Data))
				answered = true
				return f.Data[1:], nil
			}
			d.log.Debug("pn532: skipping stale frame", "tfi", f.TFI, "data", loggable(f.Data))
		}
		// ACK/NACK here, or a stale response: keep waiting.
	}
}

func (d *Dev) waitACK(ctx context.Context, cmd byte, timeout time.Duration) error {
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		f, err := d.t.ReadFrame(actx)
		if err != nil {
			if errors.Is(err, ErrChecksum) || errors.Is(err, ErrLength) {
				continue // noise on the line; the ACK may still come
			}
			if actx.Err() != nil {
				if ctx.Err() != nil {
					d.abort(ctx) // the chip may have the command already
					return ctx.Err()
				}
				return fmt.Errorf("%w: command %02X within %v", ErrNoACK, cmd, timeout)
			}
			return err
		}
		switch f.Kind {
		case KindACK:
			return nil
		case KindError:
			return fmt.Errorf("%w (command %02X)", ErrSyntax, cmd)
		}
		d.log.Debug("pn532: frame before ACK dropped", "kind", f.Kind.String())
	}
}

// abort sends ACK so the chip drops the running command; best effort.
func (d *Dev) abort(ctx context.Context) {
	d.stale = true
	if err := d.t.WriteFrame(context.WithoutCancel(ctx), ACK); err != nil {
		d.log.Debug("pn532: abort", "err", err)
	}
}

// TargetB is an activated ISO/IEC 14443-4 Type B card.
type TargetB struct {
	Tg       byte
	PUPI     [4]byte
	AppData  [4]byte
	ProtInfo [3]byte
	// ATTRIBRes is the card's answer to the ATTRIB the chip sent.
	ATTRIBRes []byte
	// ATQB is the parsed answer to REQB: frame size, waiting time, CID
	// support and ISO/IEC 14443-4 compliance.
	ATQB isodep.ATQB
}

// Number is the chip's target number (Tg).
func (t *TargetB) Number() byte { return t.Tg }

// Tech is "iso14443-4b".
func (t *TargetB) Tech() string { return "iso14443-4b" }

// ISO14443_4 reports whether the card declared ISO/IEC 14443-4 support
// in its ATQB (Protocol_Type, ISO/IEC 14443-3 §7.9.4.3).
func (t *TargetB) ISO14443_4() bool { return t.ATQB.ISO14443_4 }

// ID is the PUPI.
func (t *TargetB) ID() []byte { return t.PUPI[:] }

// cid is the CID the firmware's ATTRIB gave the card (the low nibble of
// the ATTRIB answer), and whether blocks carry one: the PN532 assigns CID
// = Tg = 1 (libnfc pn53x_ISO14443B_4_is_present sends BA 01 for that
// reason) unless the card said it does not support CIDs.
func (t *TargetB) cid() (byte, bool) {
	if !t.ATQB.CIDSupported {
		return 0, false
	}
	if len(t.ATTRIBRes) > 0 && t.ATTRIBRes[0]&0x0F != 0 {
		return t.ATTRIBRes[0] & 0x0F, true
	}
	return t.Tg, true
}

// MaxFrameSize is the card's maximum frame size (FSC) from ProtInfo.
func (t *TargetB) MaxFrameSize() int { return t.ATQB.FSC }

// FWT is the card's frame waiting time from ProtInfo (FWI).
func (t *TargetB) FWT() time.Duration { return t.ATQB.FWT }

// ListTypeB polls once for a 106 kbps Type B card (AFI 00, all families)
// and returns it activated, or ErrNoTarget.
func (d *Dev) ListTypeB(ctx context.Context) (*TargetB, error) {
	r, err := d.Command(ctx, cmdInListPassiveTarget, []byte{0x01, brTy106B, 0x00}, 0)
	if err != nil {
		return nil, err
	}
	t, err := parseTypeB(r)
	if err != nil {
		return nil, err
	}
	d.setActive(t)
	return t, nil
}

func parseTypeB(r []byte) (*TargetB, error) {
	if len(r) < 1 {
		return nil, fmt.Errorf("%w: empty InListPassiveTarget answer", ErrResponse)
	}
	if r[0] == 0 {
		return nil, ErrNoTarget
	}
	// NbTg Tg ATQB(12: 50 PUPI AppData ProtInfo) ATTRIB_RES length, ATTRIB_RES
	if len(r) < 1+1+12+1 || r[2] != 0x50 {
		return nil, fmt.Errorf("%w: Type B target % X", ErrResponse, r)
	}
	t := &TargetB{Tg: r[1]}
	copy(t.PUPI[:], r[3:7])
	copy(t.AppData[:], r[7:11])
	copy(t.ProtInfo[:], r[11:14])
	n := int(r[14])
	if len(r) < 15+n {
		return nil, fmt.Errorf("%w: ATTRIB_RES length %d in % X", ErrResponse, n, r)
	}
	t.ATTRIBRes = append([]byte(nil), r[15:15+n]...)
	atqb, err := isodep.ParseATQB(r[2:14])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrResponse, err)
	}
	t.ATQB = atqb
	return t, nil
}

// DataExchange sends data to target tg through the chip's ISO-DEP and
// returns the answer, following the chip's MI chaining and chaining long
// host data.
func (d *Dev) DataExchange(ctx context.Context, tg byte, data []byte) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(data) > maxDataOut {
		if _, err := d.exchange(ctx, tg|tgChaining, data[:maxDataOut]); err != nil {
			return nil, err
		}
		data = data[maxDataOut:]
	}
	r, err := d.exchange(ctx, tg, data)
	if err != nil {
		return nil, err
	}
	out := r[1:]
	for i := 0; r[0]&statusMoreInformation != 0; i++ {
		if i == maxChainedResponseFrames {
			return nil, fmt.Errorf("%w: endless MI chaining", ErrResponse)
		}
		if r, err = d.exchange(ctx, tg, nil); err != nil {
			return nil, err
		}
		out = append(out, r[1:]...)
	}
	return out, nil
}

func (d *Dev) exchange(ctx context.Context, tg byte, data []byte) ([]byte, error) {
	r, err := d.command(ctx, cmdInDataExchange, append([]byte{tg}, data...), d.opts.ExchangeTimeout, d.opts.ACKTimeout)
	if err != nil {
		return nil, err
	}
	if len(r) < 1 {
		return nil, fmt.Errorf("%w: InDataExchange without status", ErrResponse)
	}
	if c := r[0] & statusErrorMask; c != 0 {
		return nil, &StatusError{Cmd: cmdInDataExchange, Code: c}
	}
	return r, nil
}

// Release releases all targets (InRelease 00).
func (d *Dev) Release(ctx context.Context) error {
	r, err := d.Command(ctx, cmdInRelease, []byte{0x00}, 0)
	d.mu.Lock()
	d.active = activeTarget{}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if len(r) >= 1 && r[0]&statusErrorMask != 0 {
		return &StatusError{Cmd: cmdInRelease, Code: r[0] & statusErrorMask}
	}
	return nil
}

// RFField switches the RF field on or off.
func (d *Dev) RFField(ctx context.Context, on bool) error {
	v := byte(0x00)
	if on {
		v = 0x01
	}
	_, err := d.Command(ctx, cmdRFConfiguration, []byte{rfItemField, v}, 0)
	return err
}

// Halt releases the targets, switches the field off and brings a fast HSU
// link back to 115200 baud, so the next host (or this one after a
// restart) finds the chip at its power-on speed. The chip stays powered
// and reachable: no PowerDown, which leaves some boards unreachable
// (nfcpy issue 186).
func (d *Dev) Halt() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = d.Release(ctx)
	err := d.RFField(ctx, false)
	if d.Baud() != 0 && d.Baud() != DefaultBaud {
		err = errors.Join(err, d.SetBaud(ctx, DefaultBaud))
	}
	return err
}

// Card is an activated ISO/IEC 14443-4 target (Type A or B) seen as an
// ISO 7816 card through the chip's own ISO-DEP (InDataExchange).
type Card struct {
	Dev    *Dev
	Target Target
}

// Transmit sends one APDU. It refuses a target that does not speak
// ISO/IEC 14443-4: InDataExchange would then send raw frames the card
// does not understand (UM0701-02 §7.3.8).
func (c *Card) Transmit(ctx context.Context, apdu []byte) ([]byte, error) {
	if !c.Target.ISO14443_4() {
		return nil, ErrNotISODEP
	}
	return c.Dev.DataExchange(ctx, c.Target.Number(), apdu)
}

// loggable renders command or response data for the debug log without
// what a card carries: APDUs and their answers may hold PINs, collation
// numbers or personal data, so for the exchange commands only the APDU
// header, lengths and status word are shown.
func loggable(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	switch b[0] {
	case cmdInDataExchange, cmdInCommunicateThru: // 40 Tg APDU / 42 raw
		if b[0] == cmdInDataExchange && len(b) >= 6 {
			return fmt.Sprintf("% X (+%d bytes)", b[:6], len(b)-6) // 40 Tg CLA INS P1 P2
		}
		return fmt.Sprintf("% X (+%d bytes)", b[:min(2, len(b))], max(len(b)-2, 0))
	case cmdInDataExchange + 1, cmdInCommunicateThru + 1: // 41 status data… SW1 SW2
		if len(b) >= 4 {
			return fmt.Sprintf("% X (%d bytes) SW % X", b[:2], len(b)-4, b[len(b)-2:])
		}
		return fmt.Sprintf("% X", b)
	}
	return fmt.Sprintf("% X", b)
}
