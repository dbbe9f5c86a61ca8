package sim

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/kazashi/kazashi/drivers/pn532"
)

// maxPending bounds the undecoded host bytes kept while waiting for the rest
// of a frame: the longest frame is 265 bytes plus header, so anything much
// longer is garbage (a false start code with a large LEN) and is dropped.
const maxPending = 4096

// job is one command handed to the worker.
type job struct {
	id     uint64
	ctx    context.Context
	cancel context.CancelFunc
	cmd    []byte
}

type result struct {
	id       uint64
	data     []byte
	personal bool // the answer carries personal data: mask it in the log
	err      error
}

// Serve runs the HSU link on rw until ctx is done or rw fails: it decodes
// host frames, ACKs every valid information frame at once, runs the command
// and writes the answer. A host ACK while a command runs aborts it (no
// answer); a host NACK makes the chip resend its last answer. Frames with a
// bad checksum or a TFI other than D4 are dropped without ACK. While the
// chip sleeps (LowVbat after power-on or Reset, PowerDown) bytes are ignored
// until a 0x55 wakes it.
//
// Serve returns nil when ctx is done. To stop a Serve blocked in rw.Read,
// cancel ctx and close rw.
func (c *Chip) Serve(ctx context.Context, rw io.ReadWriter) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	in := make(chan []byte)
	readErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 512)
		for {
			n, err := rw.Read(buf)
			if n > 0 {
				select {
				case in <- bytes.Clone(buf[:n]):
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()

	out := make(chan []byte, 16)
	writeErr := make(chan error, 1)
	go func() {
		for {
			select {
			case b := <-out:
				if _, err := rw.Write(b); err != nil {
					writeErr <- err
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()

	jobs := make(chan job, 4)
	results := make(chan result, 4)
	go func() {
		for {
			select {
			case j := <-jobs:
				data, personal, err := c.process(j.ctx, j.cmd)
				j.cancel()
				select {
				case results <- result{id: j.id, data: data, personal: personal, err: err}:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()

	var (
		pending   []byte
		running   *job // command ACKed and not answered yet
		nextID    uint64
		lastReply []byte
		redact    hostRedactor
	)
	send := func(b []byte) error {
		select {
		case out <- b:
			return nil
		case <-ctx.Done():
			return nil
		case err := <-writeErr:
			return fmt.Errorf("sim: write: %w", err)
		}
	}
	abort := func() {
		if running != nil {
			running.cancel()
			running = nil
		}
	}
	for {
		select {
		case <-ctx.Done():
			abort()
			return nil
		case err := <-readErr:
			abort()
			if ctx.Err() != nil || errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("sim: read: %w", err)
		case err := <-writeErr:
			abort()
			return fmt.Errorf("sim: write: %w", err)
		case r := <-results:
			if running == nil || r.id != running.id {
				continue // aborted: the host no longer waits for it
			}
			running = nil
			var reply []byte
			switch {
			case errors.Is(r.err, ErrSyntax):
				reply = pn532.ErrorFrame
			case r.err != nil:
				c.log.Debug("command failed", "err", r.err)
				continue
			default:
				var err error
				if reply, err = pn532.Encode(pn532.TFIChip, r.data); err != nil {
					c.log.Warn("answer too long", "err", err)
					continue
				}
			}
			if r.personal {
				c.log.Debug("frame", "dir", "chip→host", "hex", maskedReplyHex(reply))
			} else {
				c.log.Debug("frame", "dir", "chip→host", "hex", hex.EncodeToString(reply))
			}
			lastReply = reply
			if err := send(reply); err != nil {
				return err
			}
		case b := <-in:
			if c.Asleep() {
				i := bytes.IndexByte(b, 0x55)
				if i < 0 || !c.wakeByHSU() {
					c.log.Debug("asleep: dropped host bytes", "n", len(b))
					continue
				}
				c.log.Debug("woken by HSU")
				b = b[i+1:]
				pending = pending[:0]
			}
			pending = append(pending, b...)
			for len(pending) > 0 {
				f, n, err := pn532.Decode(pending)
				pending = pending[n:]
				if errors.Is(err, pn532.ErrIncomplete) {
					if len(pending) > maxPending {
						pending = pending[:0]
					}
					break
				}
				if err != nil {
					c.log.Debug("dropped bad frame", "err", err)
					continue
				}
				switch f.Kind {
				case pn532.KindACK:
					c.log.Debug("frame", "dir", "host→chip", "kind", "ACK")
					abort()
				case pn532.KindNACK:
					c.log.Debug("frame", "dir", "host→chip", "kind", "NACK")
					if running == nil && lastReply != nil {
						if err := send(lastReply); err != nil {
							return err
						}
					}
				case pn532.KindInfo:
					if f.TFI != pn532.TFIHost {
						c.log.Debug("dropped frame with TFI", "tfi", f.TFI)
						continue
					}
					c.log.Debug("frame", "dir", "host→chip", "hex", redact.hex(f))
					abort() // a new command replaces one still running
					if err := send(pn532.ACK); err != nil {
						return err
					}
					c.log.Debug("frame", "dir", "chip→host", "kind", "ACK")
					nextID++
					jctx, jcancel := context.WithCancel(ctx)
					j := job{id: nextID, ctx: jctx, cancel: jcancel, cmd: f.Data}
					running = &j
					select {
					case jobs <- j:
					case <-ctx.Done():
						jcancel()
						return nil
					}
				default:
					c.log.Debug("dropped frame", "kind", f.Kind)
				}
			}
		}
	}
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
