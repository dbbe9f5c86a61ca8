package sim

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kazashi/kazashi/drivers/pn532"
)

// The link layer. One frame engine (engine) decodes host frames, ACKs
// them, runs the command on the chip, answers, honours host ACK (abort) and
// NACK (resend), answers the syntax error frame, models sleep and wake-up
// and a hung chip, and logs frames with secrets masked. Three links carry
// its frames, which are the same on every host interface (UM0701-02 §6.2;
// protocols.md §1: "only the wrapper differs"):
//
//   - HSU (ServeHSU, Serve): a byte stream, in this file;
//   - SPI (SPIPort, spi.go): prefix bytes 01/02/03 per NSS-low transaction;
//   - I2C (I2CBus, i2c.go): a status byte before every read.
//
// Faults (faults.go) sit between the engine and the link, in both
// directions.

// maxPending bounds the undecoded host bytes kept while waiting for the rest
// of a frame: the longest frame is 265 bytes plus header, so anything much
// longer is garbage (a false start code with a large LEN) and is dropped.
const maxPending = 4096

// defaultBaud is the HSU speed after power-on and after a reset (RSTPD_N):
// 115200 8N1 (protocols.md §1; SetSerialBaudRate changes it, UM0701-02
// §7.2.8).
const defaultBaud = 115200

// hsuRates are the SetSerialBaudRate BR codes 00..08 (UM0701-02 §7.2.8).
var hsuRates = [...]int{9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1288000}

// job is one command handed to the worker.
type job struct {
	id     uint64
	ctx    context.Context
	cancel context.CancelFunc
	cmd    []byte
}

type result struct {
	id       uint64
	cmd      []byte // the command, for the link's bookkeeping (PowerDown, SetSerialBaudRate)
	data     []byte
	personal bool // the answer carries personal data: mask it in the log
	err      error
}

// linkPort is what a link gives the frame engine.
type linkPort interface {
	// emit carries chip→host bytes (one frame, faults already applied).
	emit(b []byte) error
	// reset drops what the link holds for the host after a chip reset
	// (frames queued on SPI and I2C).
	reset()
}

// errStop ends the engine without an error (the link's end of stream).
var errStop = errors.New("sim: link stopped")

// errClosed is returned by calls into an engine that has stopped.
var errClosed = errors.New("sim: link closed")

// linkConfig is what a link's owner adds to the engine.
type linkConfig struct {
	faults *Faults
	// held reports RSTPD_N held low (the chip is in hard power-down and
	// answers nothing); nil: never.
	held *atomic.Bool
	// hostBaud returns the line speed of the host's port (HSU), 0 when
	// unknown.
	hostBaud func() int
}

// engine is the frame engine of one link. Its state belongs to the
// goroutine in run; links reach it through call and post.
type engine struct {
	c      *Chip
	log    *slog.Logger
	faults *Faults
	held   *atomic.Bool
	port   linkPort

	ctx     context.Context
	calls   chan func() error
	linkErr chan error
	jobs    chan job
	results chan result
	stopped chan struct{}

	pending   []byte
	running   *job // command ACKed and not answered yet
	nextID    uint64
	lastReply []byte
	redact    hostRedactor

	// Sleep bookkeeping, to tell a PowerDown from a chip reset (Reset puts
	// the chip in LowVbat without the link seeing a command).
	awake      bool // the chip was awake at the last look
	powerDown  bool // asleep by a PowerDown this engine answered
	pdInFlight int  // PowerDown commands handed to the worker, not returned
	// wakeMask is PowerDown's WakeUpEnable byte (UM0701-02 §7.2.11: bit 5
	// SPI, bit 7 I2C, bit 4 HSU); 0xFF after a reset: LowVbat is left by
	// any host interface.
	wakeMask byte

	// HSU speed: the chip talks at baud; baudNext is set once the chip
	// answered SetSerialBaudRate and takes effect with the host's ACK
	// (UM0701-02 §7.2.8).
	baud     int
	baudNext int
}

func newEngine(ctx context.Context, c *Chip, cfg *linkConfig, port linkPort) *engine {
	if cfg == nil {
		cfg = &linkConfig{}
	}
	f := cfg.faults
	if f == nil {
		f = &Faults{}
	}
	return &engine{
		c:        c,
		log:      c.log,
		faults:   f,
		held:     cfg.held,
		port:     port,
		ctx:      ctx,
		calls:    make(chan func() error, 16),
		linkErr:  make(chan error, 1),
		jobs:     make(chan job, 4),
		results:  make(chan result, 4),
		stopped:  make(chan struct{}),
		awake:    !c.Asleep(),
		wakeMask: 0xFF,
		baud:     defaultBaud,
	}
}

// run is the engine's loop. It returns nil when ctx is done or the link
// reported its end (errStop), and the link's error otherwise. It waits for
// the worker before returning.
func (e *engine) run() error {
	ctx, cancel := context.WithCancel(e.ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		close(e.stopped)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.work(ctx)
	}()
	// Stale frames (faults) go out as soon as the link runs.
	if err := e.sendStale(); err != nil {
		return e.stop(err)
	}
	kick := e.faults.kicker()
	for {
		select {
		case <-ctx.Done():
			e.abort()
			return nil
		case err := <-e.linkErr:
			return e.stop(err)
		case fn := <-e.calls:
			if err := fn(); err != nil {
				return e.stop(err)
			}
		case r := <-e.results:
			if err := e.onResult(r); err != nil {
				return e.stop(err)
			}
		case <-kick:
			if err := e.sendStale(); err != nil {
				return e.stop(err)
			}
		}
	}
}

func (e *engine) stop(err error) error {
	e.abort()
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// work is the worker: it runs one command at a time so the loop stays free
// for the host's ACK (abort) and for the links' transactions.
func (e *engine) work(ctx context.Context) {
	for {
		select {
		case j := <-e.jobs:
			data, personal, err := e.c.process(j.ctx, j.cmd)
			j.cancel()
			select {
			case e.results <- result{id: j.id, cmd: j.cmd, data: data, personal: personal, err: err}:
			case <-ctx.Done():
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// post hands fn to the loop without waiting; false when the engine stopped.
func (e *engine) post(fn func() error) bool {
	select {
	case e.calls <- fn:
		return true
	case <-e.stopped:
		return false
	case <-e.ctx.Done():
		return false
	}
}

// call runs fn in the loop and waits for it: the SPI and I2C links run
// their transactions this way, so a transaction sees and changes the
// engine's state at one instant, like the chip's firmware.
func (e *engine) call(fn func()) error {
	done := make(chan struct{})
	ok := e.post(func() error {
		fn()
		close(done)
		return nil
	})
	if !ok {
		return errClosed
	}
	select {
	case <-done:
		return nil
	case <-e.stopped:
		// The loop may have run fn just before it stopped.
		select {
		case <-done:
			return nil
		default:
			return errClosed
		}
	}
}

// fail reports a link failure to the loop.
func (e *engine) fail(err error) {
	select {
	case e.linkErr <- err:
	default:
	}
}

func (e *engine) isHeld() bool { return e.held != nil && e.held.Load() }

// abort cancels the running command: its answer will not be sent.
func (e *engine) abort() {
	if e.running != nil {
		e.running.cancel()
		e.running = nil
	}
}

// syncChip notices a chip reset that happened behind the link's back
// (Chip.Reset called directly, Chip.Hang then Reset): the chip is asleep
// although no PowerDown went through this link. A reset while the chip is
// already powered down by a command cannot be told from that PowerDown;
// ResetPin and Sim report their resets explicitly.
func (e *engine) syncChip() {
	asleep := e.c.Asleep()
	if e.awake && asleep && e.pdInFlight == 0 && !e.powerDown {
		e.log.Debug("chip reset seen by the link")
		e.chipReset()
	}
	if !asleep {
		e.powerDown = false
	}
	e.awake = !asleep
}

// chipReset forgets everything the chip's RAM held for the link: the half
// received frame, the command, the last answer (NACK has nothing to
// resend), the HSU speed (back to 115200) and the link's queued output.
func (e *engine) chipReset() {
	e.abort()
	e.pending = e.pending[:0]
	e.lastReply = nil
	e.redact = hostRedactor{}
	e.powerDown = false
	e.wakeMask = 0xFF
	if e.baud != defaultBaud {
		e.log.Debug("link speed", "baud", defaultBaud)
	}
	e.baud, e.baudNext = defaultBaud, 0
	e.awake = !e.c.Asleep()
	e.port.reset()
}

// sleeping reports whether the chip is asleep for the SPI and I2C links:
// a chip running PowerDown is still finishing the command (it falls
// asleep after its answer, UM0701-02 §7.2.11), and must not be woken by
// the host's status polls in the meantime.
func (e *engine) sleeping() bool {
	return e.c.Asleep() && e.pdInFlight == 0
}

// wakeBy wakes a sleeping chip for activity on a host interface whose
// WakeUpEnable bit is bit (UM0701-02 §7.2.11), and reports whether the
// chip is awake.
func (e *engine) wakeBy(bit byte) bool {
	e.syncChip()
	if !e.sleeping() {
		return true
	}
	if e.wakeMask&bit == 0 {
		return false
	}
	e.c.wakeByHost()
	e.awake = true
	e.powerDown = false
	e.log.Debug("woken by host interface", "bit", bit)
	return true
}

// send carries one chip→host frame through the faults to the link.
func (e *engine) send(frame []byte) error {
	b := e.faults.chipOut(frame)
	if len(b) == 0 {
		return nil
	}
	return e.port.emit(b)
}

// sendStale sends the stale frames the faults hold (a previous session's
// answers). They are not the chip's last answer: NACK does not repeat them.
func (e *engine) sendStale() error {
	for _, f := range e.faults.takeStale() {
		e.log.Debug("frame", "dir", "chip→host", "stale", true, "hex", hex.EncodeToString(f))
		if err := e.send(f); err != nil {
			return err
		}
	}
	return nil
}

// hostBytes takes bytes the host sent: the HSU stream, the data of an SPI
// data-write transaction, the bytes of an I2C write. hsu selects the HSU
// wake-up rule (a 0x55 byte wakes the chip; SPI and I2C wake it with NSS
// or the address, before the data, see wakeBy).
func (e *engine) hostBytes(b []byte, hsu bool) error {
	e.syncChip()
	// A lost byte is lost on the line, whatever the chip's state.
	b = e.faults.hostIn(b)
	if len(b) == 0 {
		return nil
	}
	if e.isHeld() {
		e.log.Debug("in reset: dropped host bytes", "n", len(b))
		return nil
	}
	if e.c.Hung() {
		e.log.Debug("hung: dropped host bytes", "n", len(b))
		return nil
	}
	if !hsu && e.sleeping() {
		e.log.Debug("asleep: dropped host bytes", "n", len(b))
		return nil
	}
	if hsu && e.c.Asleep() {
		i := bytes.IndexByte(b, 0x55)
		if i < 0 || !e.c.wakeByHSU() {
			e.log.Debug("asleep: dropped host bytes", "n", len(b))
			return nil
		}
		e.log.Debug("woken by HSU")
		e.awake, e.powerDown = true, false
		b = b[i+1:]
		e.pending = e.pending[:0]
	}
	e.pending = append(e.pending, b...)
	for len(e.pending) > 0 {
		f, n, err := pn532.Decode(e.pending)
		e.pending = e.pending[n:]
		if errors.Is(err, pn532.ErrIncomplete) {
			if len(e.pending) > maxPending {
				e.pending = e.pending[:0]
			}
			break
		}
		if err != nil {
			e.log.Debug("dropped bad frame", "err", err)
			continue
		}
		if err := e.hostFrame(f); err != nil {
			return err
		}
	}
	return nil
}

// hostFrame handles one decoded host frame.
func (e *engine) hostFrame(f pn532.Frame) error {
	switch f.Kind {
	case pn532.KindACK:
		e.log.Debug("frame", "dir", "host→chip", "kind", "ACK")
		e.abort()
		if e.baudNext != 0 {
			// UM0701-02 §7.2.8: the chip answers SetSerialBaudRate at the
			// old speed and switches once the host's ACK has come in.
			e.baud, e.baudNext = e.baudNext, 0
			e.log.Debug("link speed", "baud", e.baud)
		}
	case pn532.KindNACK:
		e.log.Debug("frame", "dir", "host→chip", "kind", "NACK")
		if e.running == nil && e.lastReply != nil {
			e.log.Debug("frame", "dir", "chip→host", "resend", true)
			return e.send(e.lastReply)
		}
	case pn532.KindInfo:
		if f.TFI != pn532.TFIHost {
			e.log.Debug("dropped frame with TFI", "tfi", f.TFI)
			return nil
		}
		e.log.Debug("frame", "dir", "host→chip", "hex", e.redact.hex(f))
		e.abort() // a new command replaces one still running
		e.baudNext = 0
		if err := e.send(pn532.ACK); err != nil {
			return err
		}
		e.log.Debug("frame", "dir", "chip→host", "kind", "ACK")
		e.nextID++
		jctx, jcancel := context.WithCancel(e.ctx)
		j := job{id: e.nextID, ctx: jctx, cancel: jcancel, cmd: f.Data}
		e.running = &j
		if len(f.Data) > 0 && f.Data[0] == cmdPowerDown {
			e.pdInFlight++
		}
		select {
		case e.jobs <- j:
		case <-e.ctx.Done():
			jcancel()
			return errStop
		}
	default:
		e.log.Debug("dropped frame", "kind", f.Kind)
	}
	return nil
}

// onResult sends the answer of the running command.
func (e *engine) onResult(r result) error {
	if len(r.cmd) > 0 && r.cmd[0] == cmdPowerDown {
		e.pdInFlight--
		if r.err == nil && len(r.data) >= 2 && r.data[1] == StatusOK && len(r.cmd) >= 2 {
			e.powerDown, e.awake = true, false
			e.wakeMask = r.cmd[1]
		}
	}
	if e.running == nil || r.id != e.running.id {
		return nil // aborted: the host no longer waits for it
	}
	e.running = nil
	if e.isHeld() || e.c.Hung() {
		e.log.Debug("answer lost", "held", e.isHeld(), "hung", e.c.Hung())
		return nil
	}
	var reply []byte
	switch {
	case errors.Is(r.err, ErrSyntax):
		reply = pn532.ErrorFrame
	case r.err != nil:
		e.log.Debug("command failed", "err", r.err)
		return nil
	default:
		var err error
		if reply, err = pn532.Encode(pn532.TFIChip, r.data); err != nil {
			e.log.Warn("answer too long", "err", err)
			return nil
		}
		if len(r.cmd) == 2 && r.cmd[0] == cmdSetSerialBaudRate && len(r.data) > 0 && r.data[0] == cmdSetSerialBaudRate+1 && int(r.cmd[1]) < len(hsuRates) {
			e.baudNext = hsuRates[r.cmd[1]]
		}
	}
	if r.personal {
		e.log.Debug("frame", "dir", "chip→host", "hex", maskedReplyHex(reply))
	} else {
		e.log.Debug("frame", "dir", "chip→host", "hex", hex.EncodeToString(reply))
	}
	e.lastReply = reply
	return e.send(reply)
}

// HSUOptions configures ServeHSU.
type HSUOptions struct {
	// Faults injects link faults (nil: none).
	Faults *Faults
	// HostBaud returns the line speed the host's port is set to, 0 when
	// unknown. When it is known and differs from the chip's speed (after
	// SetSerialBaudRate), the bytes are resampled like a UART receiver at
	// the wrong speed would: the host reads garbage, and so does the chip.
	// nil: the host always matches.
	HostBaud func() int
}

// Serve runs the HSU link on rw until ctx is done or rw fails: it decodes
// host frames, ACKs every valid information frame at once, runs the command
// and writes the answer. A host ACK while a command runs aborts it (no
// answer); a host NACK makes the chip resend its last answer. Frames with a
// bad checksum or a TFI other than D4 are dropped without ACK. While the
// chip sleeps (LowVbat after power-on or Reset, PowerDown) bytes are ignored
// until a 0x55 wakes it. While the chip is hung (Chip.Hang) it answers
// nothing.
//
// Serve returns nil when ctx is done. To stop a Serve blocked in rw.Read,
// cancel ctx and close rw.
func (c *Chip) Serve(ctx context.Context, rw io.ReadWriter) error {
	return c.ServeHSU(ctx, rw, nil)
}

// ServeHSU is Serve with fault injection and the host's line speed.
//
// The chip talks 115200 baud after power-on and after a reset.
// SetSerialBaudRate (10 BR, BR 00..08 = 9600 … 921600, 1 288 000) is
// answered at the old speed; the chip switches when the host's ACK frame
// has come in (UM0701-02 §7.2.8). Every byte on the line adds 10 bit times
// at the chip's current speed to the chip's Meter (8N1).
func (c *Chip) ServeHSU(ctx context.Context, rw io.ReadWriter, opts *HSUOptions) error {
	cfg := &linkConfig{}
	if opts != nil {
		cfg.faults, cfg.hostBaud = opts.Faults, opts.HostBaud
	}
	return c.newHSULink(ctx, cfg).serve(rw)
}

// hsuLink writes the engine's frames to the byte stream.
type hsuLink struct {
	e        *engine
	ctx      context.Context
	cancel   context.CancelFunc
	out      chan []byte
	wdead    chan struct{}
	werr     error
	hostBaud func() int
}

// newHSULink returns an HSU link and its engine, not serving yet.
func (c *Chip) newHSULink(ctx context.Context, cfg *linkConfig) *hsuLink {
	ctx, cancel := context.WithCancel(ctx)
	h := &hsuLink{ctx: ctx, cancel: cancel, out: make(chan []byte, 16), wdead: make(chan struct{}), hostBaud: cfg.hostBaud}
	if h.hostBaud == nil {
		h.hostBaud = func() int { return 0 }
	}
	h.e = newEngine(ctx, c, cfg, h)
	return h
}

// serve runs the link on rw (see Serve).
func (h *hsuLink) serve(rw io.ReadWriter) error {
	defer h.cancel()
	e, ctx := h.e, h.ctx
	go func() {
		buf := make([]byte, 512)
		for {
			// The host's speed before and after the bytes arrived: a host
			// that switches right after writing its ACK (as it must,
			// UM0701-02 §7.2.8) sent them at one of the two.
			before := h.hostBaud()
			n, err := rw.Read(buf)
			after := h.hostBaud()
			if n > 0 {
				b := bytes.Clone(buf[:n])
				if !e.post(func() error { return e.hsuInput(b, before, after) }) {
					return
				}
			}
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, io.EOF) {
					e.fail(errStop)
				} else {
					e.fail(fmt.Errorf("sim: read: %w", err))
				}
				return
			}
		}
	}()

	go func() {
		for {
			select {
			case b := <-h.out:
				if _, err := rw.Write(b); err != nil {
					h.werr = fmt.Errorf("sim: write: %w", err)
					close(h.wdead)
					e.fail(h.werr)
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()

	return e.run()
}

// hsuInput takes bytes read from the HSU line.
func (e *engine) hsuInput(b []byte, before, after int) error {
	e.syncChip()
	e.c.meter.Link(len(b), time.Duration(len(b))*UARTByteTime(e.baud))
	if after != 0 && !sameBaud(before, e.baud) && !sameBaud(after, e.baud) {
		// The host's UART sends at its speed; the chip samples at its own.
		b = resampleUART(b, after, e.baud)
	}
	return e.hostBytes(b, true)
}

func (h *hsuLink) emit(b []byte) error {
	baud := h.e.baud
	h.e.c.meter.Link(len(b), time.Duration(len(b))*UARTByteTime(baud))
	if hb := h.hostBaud(); hb != 0 && !sameBaud(hb, baud) {
		b = resampleUART(b, baud, hb)
		if len(b) == 0 {
			return nil
		}
	}
	select {
	case h.out <- b:
		return nil
	case <-h.ctx.Done():
		return nil
	case <-h.wdead:
		return h.werr
	}
}

func (h *hsuLink) reset() {}

// sameBaud reports whether two line speeds are within the ±2.5 % a UART
// receiver tolerates (it samples mid-bit; after 9.5 bits an error of more
// than about half a bit loses the stop bit).
func sameBaud(a, b int) bool {
	if a == 0 || b == 0 {
		return false
	}
	d := a - b
	if d < 0 {
		d = -d
	}
	return d*40 <= b
}

// resampleUART returns what a UART receiving at rx baud makes of data sent
// 8N1 at tx baud, back to back, on a line idle (high) before and after: it
// looks for a falling edge (start bit), checks it mid-bit, samples the 8
// data bits (LSB first) and the stop bit in the middle of its own bit
// times. A low stop bit (framing error) still delivers the byte, as a tty
// in raw mode does without INPCK; the receiver then waits for the line to
// go high before it hunts for the next start bit.
func resampleUART(data []byte, tx, rx int) []byte {
	if len(data) == 0 || tx <= 0 || rx <= 0 {
		return nil
	}
	nbits := 10 * len(data)
	// level of the line during sender bit k (0..nbits-1); idle high outside.
	level := func(k int) byte {
		if k < 0 || k >= nbits {
			return 1
		}
		switch bit := k % 10; bit {
		case 0:
			return 0 // start bit
		case 9:
			return 1 // stop bit
		default:
			return data[k/10] >> (bit - 1) & 1
		}
	}
	ttx := 1 / float64(tx) // seconds per sender bit
	trx := 1 / float64(rx)
	at := func(t float64) byte { // line level at time t
		if t < 0 {
			return 1
		}
		return level(int(t / ttx))
	}
	end := float64(nbits) * ttx
	var out []byte
	t := 0.0
	for t < end {
		// Next falling edge at or after t: edges fall on sender bit
		// boundaries.
		k := int(t / ttx)
		if float64(k)*ttx < t {
			k++
		}
		for ; k < nbits; k++ {
			if level(k) == 0 && level(k-1) == 1 {
				break
			}
		}
		if k >= nbits {
			break
		}
		t0 := float64(k) * ttx
		if at(t0+trx/2) != 0 { // glitch: not a start bit
			t = t0 + trx/2
			continue
		}
		var b byte
		for i := range 8 {
			b |= at(t0+(1.5+float64(i))*trx) << i
		}
		out = append(out, b)
		stop := t0 + 9.5*trx
		t = stop
		if at(stop) == 0 { // framing error: wait for the line to go high
			k = int(stop / ttx)
			for k < nbits && level(k) == 0 {
				k++
			}
			t = float64(k) * ttx
		}
	}
	return out
}

// wakeByHost wakes the chip from LowVbat or PowerDown on SPI (NSS) or I2C
// (its address) activity; the link checks WakeUpEnable first.
func (c *Chip) wakeByHost() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asleep = false
}

// redactedHex renders a single host frame for the log with the secrets of
// its APDU masked (see hostRedactor).
func redactedHex(f pn532.Frame) string {
	var r hostRedactor
	return r.hex(f)
}

// secretINS are the instructions whose data is a secret (doc §7: VERIFY
// 20, CHANGE REFERENCE DATA 24, CHANGE KEY 32; also RESET RETRY COUNTER
// 2C), in every AP.
func secretINS(ins byte) bool {
	return ins == 0x20 || ins == 0x24 || ins == 0x2C || ins == 0x32
}

// hostRedactor renders host frames for the log with the data of secret
// APDUs (PINs, passwords, collation numbers) replaced by "**": after the
// 5-byte header in the first frame, and every byte of later frames of a
// host-chained APDU (InDataExchange Tg | 40, ISO-DEP I-block chaining).
type hostRedactor struct {
	chaining bool   // the last APDU frame announced more
	head     []byte // first bytes (≤ 5) of the chained APDU so far
	secret   bool   // the chained APDU is a secret one
}

func (r *hostRedactor) hex(f pn532.Frame) string {
	d := f.Data
	apduAt, more := -1, false
	switch {
	case len(d) >= 2 && d[0] == cmdInDataExchange:
		apduAt, more = 2, d[1]&0x40 != 0
	case len(d) >= 2 && d[0] == cmdInCommunicateThru && d[1]&0xE2 == 0x02: // I-block
		apduAt, more = 2, d[1]&0x10 != 0
		if d[1]&0x08 != 0 {
			apduAt++
		}
		if d[1]&0x04 != 0 {
			apduAt++
		}
	}
	s := hex.EncodeToString([]byte{f.TFI})
	if apduAt < 0 || apduAt > len(d) || (apduAt == len(d) && !r.chaining) {
		return s + hex.EncodeToString(d)
	}
	payload := d[apduAt:]
	var head []byte
	if r.chaining {
		head = r.head
	}
	all := append(bytes.Clone(head), payload...)
	secret := r.chaining && r.secret
	if !secret {
		// An APDU too short to show its INS yet, in a chain, is masked.
		secret = len(all) < 2 && more || len(all) >= 2 && secretINS(all[1])
	}
	out := s + hex.EncodeToString(d)
	if secret {
		keep := max(5-len(head), 0) // header bytes not shown yet
		if r.chaining && r.secret {
			keep = 0
		}
		if len(payload) > keep {
			out = s + hex.EncodeToString(d[:apduAt+keep]) + "**"
		}
	}
	if more {
		r.chaining, r.secret = true, secret
		r.head = all[:min(len(all), 5)]
	} else {
		*r = hostRedactor{}
	}
	return out
}

// maskedReplyHex renders a chip answer frame carrying personal data: the
// frame header, TFI, response code and status byte, then "**".
func maskedReplyHex(reply []byte) string {
	tfiAt := 5
	if len(reply) >= 8 && reply[3] == 0xFF && reply[4] == 0xFF { // extended frame
		tfiAt = 8
	}
	keep := min(tfiAt+3, len(reply))
	return hex.EncodeToString(reply[:keep]) + "**"
}

// discard is a logger for nil options.
var discard = slog.New(slog.DiscardHandler)
