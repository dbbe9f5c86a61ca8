package isodep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kazashi/kazashi/drivers/iso7816"
)

// Transceiver sends one raw frame to the card and returns its answer. The
// frame carries no CRC: the front end appends CRC_A/CRC_B and checks and
// strips the CRC of the answer (PN532 InCommunicateThru). timeout is how
// long the card may take to start answering (FWT plus margins); the
// implementation adds its own host-link latency on top.
//
// Errors: wrap ErrNoResponse when nothing came within timeout (PN532
// status 01) and ErrTransmission for a damaged answer (CRC, parity,
// framing); Conn recovers from both (ISO/IEC 14443-4 §7.5.5). Any other
// error (host link down, context cancelled, or iso7816.ErrCardLost when
// the front end itself saw the card leave) ends the exchange as it is.
type Transceiver interface {
	Transceive(ctx context.Context, frame []byte, timeout time.Duration) ([]byte, error)
}

// Defaults for Opts fields left zero.
const (
	// DefaultRetries is N, the error recoveries per block (ISO/IEC
	// 14443-4 §7.5.5 leaves the count to the PCD; EMV uses 2).
	DefaultRetries = 2
	// DefaultMaxResponse bounds a chained response: 65538 bytes, the
	// largest extended-length response APDU (65536 data + SW1 SW2, ISO/IEC
	// 7816-4 §5.1). My Number Card answers are at most 258 bytes.
	DefaultMaxResponse = 65538
	// DefaultMaxWTX bounds the S(WTX) requests answered during one
	// Transmit. It exists only so a broken card cannot hold the reader
	// forever; the context bounds the time.
	DefaultMaxWTX = 1024
)

// Opts configures activation and the session. The zero value and nil mean
// DefaultOpts.
type Opts struct {
	// CID is the card identifier assigned in ATTRIB or RATS, 0..14 (15 is
	// RFU: ISO/IEC 14443-3 §7.10, ISO/IEC 14443-4 §5.1). It is used only
	// when the card supports CID (ATQB FO b1, ATS TC(1) b2); otherwise the
	// card gets CID 0. The default 0 suits a kiosk that serves one card at
	// a time: a card with CID 0 also answers blocks without a CID byte
	// (ISO/IEC 14443-4 §7.1.1.2), so every block is a byte shorter, and
	// the same frames work for cards without CID support. A non-zero CID
	// puts the CID byte in every block (PCB b4).
	CID byte
	// AFI selects the application family in REQB/WUPB (ISO/IEC 14443-3
	// §7.7); 0 addresses every Type B card.
	AFI byte
	// REQB sends REQB (PARAM 00) instead of WUPB (PARAM 08). REQB does
	// not wake a card in the HALT state, e.g. one just deselected.
	REQB bool
	// Retries is N, how many recovery blocks (R(NAK), or R(ACK) while the
	// card chains) are sent for one block before giving up (ISO/IEC
	// 14443-4 §7.5.5). 0 means DefaultRetries, negative means none.
	Retries int
	// Margin is added to every wait passed to the Transceiver, on top of
	// FWT + ΔFWT. Default 0.
	Margin time.Duration
	// MaxResponse bounds the bytes of one chained response; a chained
	// block with an empty INF counts as one byte. 0 means
	// DefaultMaxResponse.
	MaxResponse int
	// MaxWTX bounds the S(WTX) requests answered per Transmit. 0 means
	// DefaultMaxWTX.
	MaxWTX int
	// Logger receives debug records with PCB bytes and frame lengths,
	// never frame contents (APDUs may carry PINs). nil = quiet.
	Logger *slog.Logger

	// sleep waits out the SFGT after activation; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

// DefaultOpts are the options used for nil or zero fields.
var DefaultOpts = Opts{
	Retries:     DefaultRetries,
	MaxResponse: DefaultMaxResponse,
	MaxWTX:      DefaultMaxWTX,
}

// normalize returns a copy of o with defaults filled in.
func normalize(o *Opts) (Opts, error) {
	var n Opts
	if o != nil {
		n = *o
	}
	if n.CID > 14 {
		return n, fmt.Errorf("isodep: CID %d out of range 0..14", n.CID)
	}
	switch {
	case n.Retries == 0:
		n.Retries = DefaultRetries
	case n.Retries < 0:
		n.Retries = 0
	}
	if n.MaxResponse <= 0 {
		n.MaxResponse = DefaultMaxResponse
	}
	if n.MaxWTX <= 0 {
		n.MaxWTX = DefaultMaxWTX
	}
	if n.Margin < 0 {
		n.Margin = 0
	}
	if n.sleep == nil {
		n.sleep = sleepCtx
	}
	return n, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Params are the session parameters an activation produced.
type Params struct {
	// FSC is the card's largest frame in bytes, including PCB, CID, NAD
	// and the two CRC bytes (ATQB Max_Frame_Size, ATS FSCI): 16..256.
	FSC int
	// FWT is the card's frame waiting time (ATQB or ATS FWI).
	FWT time.Duration
	// CID is the card identifier carried in every block when UseCID.
	CID    byte
	UseCID bool
	// MBLI is the maximum buffer length index from the answer to ATTRIB
	// (ISO/IEC 14443-3 §7.11), 0 = not given; informational.
	MBLI byte
}

// Stats counts the blocks of a session, for benchmarks and the status page.
type Stats struct {
	BlocksSent      uint64 // frames handed to the Transceiver
	BlocksReceived  uint64 // answers that came back, valid or not
	Retransmissions uint64 // recovery frames: R(NAK), repeated R(ACK), resent I-blocks (§7.5.5)
	WTX             uint64 // S(WTX) requests answered (§7.3)
	Timeouts        uint64 // exchanges that ended in ErrNoResponse
	Errors          uint64 // damaged or invalid answers
}

// Conn is an ISO-DEP session with one activated card. It implements
// iso7816.Card. Its methods are safe for concurrent use; exchanges are
// serialised. Once Transmit fails the block numbers may be out of step and
// the Conn answers ErrClosed (wrapping the first failure): deselect or
// re-activate the card.
type Conn struct {
	t    Transceiver
	p    Params
	opts Opts

	mu         sync.Mutex
	pcdNum     byte  // the PCD's current block number (§7.5.3.1)
	failed     error // first failure that left the session unusable
	deselected bool

	sent, received, retrans, wtx, timeouts, errs atomic.Uint64
}

var _ iso7816.Card = (*Conn)(nil)

// New starts a session with a card that is already activated, e.g. by the
// front end's firmware, with the given parameters. An FSC outside 16..256
// is clamped; FWT 0 means FWI 4.
func New(t Transceiver, p Params, opts *Opts) (*Conn, error) {
	o, err := normalize(opts)
	if err != nil {
		return nil, err
	}
	return newConn(t, p, o)
}

// newConn is New with normalised options.
func newConn(t Transceiver, p Params, o Opts) (*Conn, error) {
	if t == nil {
		return nil, errors.New("isodep: nil Transceiver")
	}
	if p.CID > 14 {
		return nil, fmt.Errorf("isodep: CID %d out of range 0..14", p.CID)
	}
	p.FSC = min(max(p.FSC, 16), 256) // ISO/IEC 14443-4 §5.2.3: FSC 16..256
	if p.FWT <= 0 {
		p.FWT = FrameWaitingTime(4) // default FWI (ISO/IEC 14443-4 §5.2.5)
	}
	p.FWT = min(p.FWT, FWTMax)
	// Rule A (§7.5.3.1): the PCD block number starts at 0 for each
	// activated card.
	return &Conn{t: t, p: p, opts: o}, nil
}

// Params returns the session parameters.
func (c *Conn) Params() Params { return c.p }

// String describes the session without card data.
func (c *Conn) String() string {
	cid := "none"
	if c.p.UseCID {
		cid = fmt.Sprint(c.p.CID)
	}
	return fmt.Sprintf("isodep.Conn{FSC %d, FWT %v, CID %s}", c.p.FSC, c.p.FWT.Round(time.Microsecond), cid)
}

// Stats returns the counters of the session so far.
func (c *Conn) Stats() Stats {
	return Stats{
		BlocksSent:      c.sent.Load(),
		BlocksReceived:  c.received.Load(),
		Retransmissions: c.retrans.Load(),
		WTX:             c.wtx.Load(),
		Timeouts:        c.timeouts.Load(),
		Errors:          c.errs.Load(),
	}
}

// wait is the time the card may take for one block: FWT + ΔFWT
// (ISO/IEC 14443-4 §7.2) + Margin.
func (c *Conn) wait() time.Duration { return c.p.FWT + DeltaFWT + c.opts.Margin }

// block fills in the CID of a block the PCD sends (§7.1.1.2).
func (c *Conn) block(b Block) []byte {
	if c.p.UseCID {
		b.HasCID, b.CID = true, c.p.CID
	}
	return b.Encode()
}

// rBlock is R(ACK) or R(NAK) with the PCD's current block number.
func (c *Conn) rBlock(t BlockType) []byte {
	return c.block(Block{Type: t, Num: c.pcdNum})
}

// Transmit sends one command APDU and returns the response APDU,
// chaining both ways as FSC and FSD require (ISO/IEC 14443-4 §7.5.2) and
// recovering from lost or damaged blocks (§7.5.5).
//
// Errors wrap iso7816.ErrCardLost (and ErrNoResponse) when the card stopped
// answering, ErrTransmission or ErrInvalidBlock when its answers stayed
// damaged through every retry, ErrProtocol when it broke the block rules,
// the context's error when ctx ended, and ErrClosed (with the first
// failure) once the session is unusable.
func (c *Conn) Transmit(ctx context.Context, apdu []byte) ([]byte, error) {
	if len(apdu) == 0 {
		return nil, errors.New("isodep: empty APDU")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed != nil {
		return nil, fmt.Errorf("%w: %w", ErrClosed, c.failed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("isodep: %w", err)
	}
	resp, err := c.transmit(ctx, apdu)
	if err != nil {
		c.failed = err
		return nil, err
	}
	return resp, nil
}

func (c *Conn) transmit(ctx context.Context, apdu []byte) ([]byte, error) {
	// INF room per block: FSC counts PCB, CID and the two CRC bytes too
	// (§7.1, §5.2.3); this package never sends a NAD.
	room := c.p.FSC - 3
	if c.p.UseCID {
		room--
	}
	wtx := 0
	var first Block
	for off := 0; ; {
		n := min(room, len(apdu)-off)
		more := off+n < len(apdu) // §7.5.2: chaining bit on all but the last
		frame := c.block(Block{Type: IBlock, Num: c.pcdNum, Chaining: more, INF: apdu[off : off+n]})
		blk, err := c.sendI(ctx, frame, more, &wtx)
		if err != nil {
			return nil, err
		}
		off += n
		if !more {
			first = blk
			break
		}
	}
	budget := c.opts.MaxResponse
	resp := make([]byte, 0, len(first.INF))
	blk := first
	for {
		budget -= max(len(blk.INF), 1)
		if budget < 0 {
			return nil, fmt.Errorf("%w: response longer than %d bytes", ErrProtocol, c.opts.MaxResponse)
		}
		resp = append(resp, blk.INF...)
		if !blk.Chaining {
			return resp, nil
		}
		var err error
		if blk, err = c.receiveNext(ctx, &wtx); err != nil {
			return nil, err
		}
	}
}

// sendI sends one I-block and returns the card's acknowledgement: R(ACK)
// when the block chains, the first I-block of the response otherwise. It
// runs the PCD rules of ISO/IEC 14443-4 §7.5.4.2 and the recovery of
// §7.5.5 for that block.
func (c *Conn) sendI(ctx context.Context, frame []byte, chaining bool, wtx *int) (Block, error) {
	out, timeout := frame, c.wait()
	nak := false // out is our R(NAK)
	failures := 0
	for {
		blk, err := c.roundTrip(ctx, out, timeout)
		timeout = c.wait() // an S(WTX) extension holds for one block only (§7.3)
		if err != nil {
			if !recoverable(err) {
				return Block{}, err
			}
			if failures++; failures > c.opts.Retries {
				return Block{}, c.giveUp(err)
			}
			// Rule 4: invalid block or FWT time-out → R(NAK) with the
			// current block number. The card answers R(ACK) if the
			// I-block was lost (rule 12) or repeats its last block if
			// the answer was lost (rule 11).
			out, nak = c.rBlock(RNAK), true
			c.retrans.Add(1)
			continue
		}
		switch blk.Type {
		case SWTX: // rule 9: the card may ask for time instead of answering
			if out, timeout, err = c.answerWTX(blk, wtx); err != nil {
				return Block{}, err
			}
			nak = false
			continue
		case RACK:
			if blk.Num != c.pcdNum {
				// Rule 6: R(ACK) with the other block number → send the
				// last I-block again. In answer to R(NAK) that is the
				// normal recovery of a lost I-block; otherwise it counts
				// as a failure, so a card that keeps doing it cannot
				// hold us in a loop.
				if !nak {
					if failures++; failures > c.opts.Retries {
						return Block{}, fmt.Errorf("%w: card keeps acknowledging block %d", ErrProtocol, blk.Num)
					}
				}
				out, nak = frame, false
				c.retrans.Add(1)
				continue
			}
			if !chaining {
				return Block{}, fmt.Errorf("%w: R(ACK) for an unchained I-block", ErrProtocol)
			}
			c.pcdNum ^= 1   // rule B: toggle on R(ACK) with the current number
			return blk, nil // rule 7: continue chaining
		case IBlock:
			if chaining {
				// Rule 2: each chained I-block is acknowledged by R(ACK).
				return Block{}, fmt.Errorf("%w: I-block while the reader chains", ErrProtocol)
			}
			if blk.Num != c.pcdNum {
				// Answering would run the APDU twice or mix answers.
				return Block{}, fmt.Errorf("%w: I-block number %d, want %d", ErrProtocol, blk.Num, c.pcdNum)
			}
			c.pcdNum ^= 1 // rule B: toggle on an I-block
			return blk, nil
		default:
			// A card never sends R(NAK) (§7.5.4.3 rules 11–13), and
			// S(DESELECT) and S(PARAMETERS) requests come from the PCD.
			return Block{}, fmt.Errorf("%w: unexpected %v", ErrProtocol, blk.Type)
		}
	}
}

// receiveNext acknowledges a chained I-block of the card and returns the
// next one (ISO/IEC 14443-4 §7.5.2, rules 2 and 5).
func (c *Conn) receiveNext(ctx context.Context, wtx *int) (Block, error) {
	ack := c.rBlock(RACK) // rule 2, with the already toggled number (rule B)
	out, timeout := ack, c.wait()
	failures := 0
	for {
		blk, err := c.roundTrip(ctx, out, timeout)
		timeout = c.wait()
		if err != nil {
			if !recoverable(err) {
				return Block{}, err
			}
			if failures++; failures > c.opts.Retries {
				return Block{}, c.giveUp(err)
			}
			// Rule 5: while the card chains, recover with R(ACK): if it
			// got the first one it repeats its block (rule 11), else it
			// continues the chain (rule 13).
			out = ack
			c.retrans.Add(1)
			continue
		}
		switch blk.Type {
		case SWTX: // rule 9
			if out, timeout, err = c.answerWTX(blk, wtx); err != nil {
				return Block{}, err
			}
			continue
		case IBlock:
			if blk.Num != c.pcdNum {
				return Block{}, fmt.Errorf("%w: chained I-block number %d, want %d", ErrProtocol, blk.Num, c.pcdNum)
			}
			c.pcdNum ^= 1 // rule B
			return blk, nil
		default:
			return Block{}, fmt.Errorf("%w: unexpected %v while the card chains", ErrProtocol, blk.Type)
		}
	}
}

// answerWTX builds the S(WTX) response and the extended wait for the next
// block (ISO/IEC 14443-4 §7.3): the response carries the same WTXM; the
// card then has FWT × WTXM, at most FWTMax, for that block only. WTXM
// 60..63 are RFU and read as 59.
func (c *Conn) answerWTX(req Block, count *int) ([]byte, time.Duration, error) {
	if *count++; *count > c.opts.MaxWTX {
		return nil, 0, fmt.Errorf("%w: more than %d S(WTX) requests", ErrProtocol, c.opts.MaxWTX)
	}
	c.wtx.Add(1)
	m := req.WTXM()
	resp := c.block(Block{Type: SWTX, INF: []byte{m}})
	ext := min(c.p.FWT*time.Duration(min(m, 59)), FWTMax)
	return resp, ext + DeltaFWT + c.opts.Margin, nil
}

// giveUp turns the last recoverable error into the final one: silence
// means the card left the field.
func (c *Conn) giveUp(err error) error {
	if errors.Is(err, ErrNoResponse) {
		return fmt.Errorf("isodep: no answer after %d retries: %w: %w", c.opts.Retries, iso7816.ErrCardLost, err)
	}
	return fmt.Errorf("isodep: still failing after %d retries: %w", c.opts.Retries, err)
}

// recoverable reports the errors ISO/IEC 14443-4 §7.5.5 recovers from:
// time-out, transmission error, invalid block.
func recoverable(err error) bool {
	return errors.Is(err, ErrNoResponse) || errors.Is(err, ErrTransmission) || errors.Is(err, ErrInvalidBlock)
}

// roundTrip sends one frame and parses the answer, checking that it is
// addressed the way this session addresses the card.
func (c *Conn) roundTrip(ctx context.Context, out []byte, timeout time.Duration) (Block, error) {
	if err := ctx.Err(); err != nil {
		return Block{}, fmt.Errorf("isodep: %w", err)
	}
	c.sent.Add(1)
	c.logFrame(ctx, "isodep tx", out)
	in, err := c.t.Transceive(ctx, out, timeout)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return Block{}, fmt.Errorf("isodep: %w", cerr)
		}
		switch {
		case errors.Is(err, ErrNoResponse):
			c.timeouts.Add(1)
		case errors.Is(err, ErrTransmission): // an answer came, damaged
			c.received.Add(1)
			c.errs.Add(1)
		}
		return Block{}, fmt.Errorf("isodep: transceive: %w", err)
	}
	c.received.Add(1)
	c.logFrame(ctx, "isodep rx", in)
	blk, err := c.check(in)
	if err != nil {
		c.errs.Add(1)
		return Block{}, err
	}
	return blk, nil
}

// check parses a block from the card and verifies its addressing.
func (c *Conn) check(in []byte) (Block, error) {
	if len(in) > FSD-2 {
		return Block{}, fmt.Errorf("%w: %d-byte frame exceeds FSD %d", ErrInvalidBlock, len(in)+2, FSD)
	}
	blk, err := ParseBlock(in)
	if err != nil {
		return Block{}, err
	}
	// §7.1.1.2: a card addressed with a CID answers with it; one
	// addressed without answers without. Anything else is not for us.
	switch {
	case c.p.UseCID && (!blk.HasCID || blk.CID&0x0F != c.p.CID):
		return Block{}, fmt.Errorf("%w: CID mismatch", ErrInvalidBlock)
	case !c.p.UseCID && blk.HasCID:
		return Block{}, fmt.Errorf("%w: unexpected CID", ErrInvalidBlock)
	case blk.HasNAD:
		// §7.1.1.3: the card uses a NAD only if the PCD did; we never do.
		return Block{}, fmt.Errorf("%w: unexpected NAD", ErrInvalidBlock)
	}
	return blk, nil
}

func (c *Conn) logFrame(ctx context.Context, msg string, frame []byte) {
	logFrame(ctx, c.opts.Logger, msg, frame)
}

// logFrame logs the PCB (first byte) and length of a frame; never more,
// as INF may carry PINs.
func logFrame(ctx context.Context, l *slog.Logger, msg string, frame []byte) {
	if l == nil || len(frame) == 0 || !l.Enabled(ctx, slog.LevelDebug) {
		return
	}
	l.LogAttrs(ctx, slog.LevelDebug, msg,
		slog.String("pcb", fmt.Sprintf("%02X", frame[0])),
		slog.Int("len", len(frame)))
}

// Present checks that the card is still in the field with R(NAK) carrying
// the current block number (ISO/IEC 14443-4:2018 §7.6.6, the approach of
// libnfc's pn53x_ISO14443B_4_is_present and pn53x_ISO14443A_4_is_present).
// Between exchanges the card's block number differs from the PCD's, so it
// answers R(ACK) (§7.5.4.3 rule 12), or repeats its last block when the
// numbers agree (rule 11); neither changes the session state. Any valid
// block means present; no response means gone (false, nil); damaged or
// invalid answers are retried twice, then Present returns false and the
// error.
func (c *Conn) Present(ctx context.Context) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deselected {
		return false, ErrClosed
	}
	nak := c.rBlock(RNAK)
	var last error
	for range 3 {
		_, err := c.roundTrip(ctx, nak, c.wait())
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, ErrNoResponse):
			return false, nil
		case !recoverable(err):
			return false, err
		}
		last = err
	}
	return false, fmt.Errorf("isodep: presence check: %w", last)
}

// Deselect sends S(DESELECT) and waits for the card's S(DESELECT)
// response (ISO/IEC 14443-4 clause 8), sending it again up to Retries
// times (§7.5.4.2 rule 8). The card goes to HALT (only WUPB/WUPA wakes it)
// and the Conn is closed either way.
func (c *Conn) Deselect(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deselected {
		return nil
	}
	c.deselected = true
	if c.failed == nil {
		c.failed = errors.New("isodep: deselected")
	}
	var cid byte
	if c.p.UseCID {
		cid = c.p.CID
	}
	return deselect(ctx, c.t, cid, c.opts.Retries, c.opts.Margin, c)
}

// DeselectCID sends S(DESELECT) to a card activated by someone else, e.g.
// the PN532 firmware (which assigns CID 1 to Type B cards): CID 0 sends
// `C2` (a card with CID 0 answers blocks without CID, ISO/IEC 14443-4
// §7.1.1.2), CID 1..14 sends `CA cid`. It waits for the echo and retries
// DefaultRetries times (§7.5.4.2 rule 8). An error wrapping ErrNoResponse
// usually means no card was active with that CID.
func DeselectCID(ctx context.Context, t Transceiver, cid byte) error {
	if cid > 14 {
		return fmt.Errorf("isodep: CID %d out of range 0..14", cid)
	}
	return deselect(ctx, t, cid, DefaultRetries, 0, nil)
}

func deselect(ctx context.Context, t Transceiver, cid byte, retries int, margin time.Duration, c *Conn) error {
	req := Block{Type: SDeselect}
	if cid != 0 {
		req.HasCID, req.CID = true, cid
	}
	frame := req.Encode()
	var l *slog.Logger
	if c != nil {
		l = c.opts.Logger
	}
	var last error
	for attempt := range retries + 1 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("isodep: DESELECT: %w", err)
		}
		if c != nil {
			c.sent.Add(1)
			if attempt > 0 {
				c.retrans.Add(1)
			}
		}
		logFrame(ctx, l, "isodep tx", frame)
		in, err := t.Transceive(ctx, frame, FWTDeselect+DeltaFWT+margin)
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return fmt.Errorf("isodep: DESELECT: %w", cerr)
			}
			if !errors.Is(err, ErrNoResponse) && !errors.Is(err, ErrTransmission) {
				return fmt.Errorf("isodep: DESELECT: %w", err)
			}
			if c != nil {
				if errors.Is(err, ErrNoResponse) {
					c.timeouts.Add(1)
				} else {
					c.received.Add(1)
					c.errs.Add(1)
				}
			}
			last = err
			continue
		}
		if c != nil {
			c.received.Add(1)
		}
		logFrame(ctx, l, "isodep rx", in)
		blk, err := ParseBlock(in)
		var got byte // CID of the answer; none reads as 0
		if blk.HasCID {
			got = blk.CID & 0x0F
		}
		switch {
		case err != nil:
			last = err
		case blk.Type != SDeselect:
			last = fmt.Errorf("%w: %v in answer to S(DESELECT)", ErrInvalidBlock, blk.Type)
		case got != cid || (cid != 0 && !blk.HasCID):
			last = fmt.Errorf("%w: S(DESELECT) response with another CID", ErrInvalidBlock)
		default:
			return nil
		}
		if c != nil {
			c.errs.Add(1)
		}
	}
	return fmt.Errorf("isodep: DESELECT not answered: %w", last)
}
