package sim

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
)

// Fault injection. The faults sit between the frame engine and the wire, on
// every link (HSU, SPI, I2C), and model what goes wrong in the field:
//
//   - lost bytes in either direction (a noisy line, a UART FIFO overrun);
//   - a flipped bit in what the chip sends (noise on TX/MISO/SDA): the host
//     sees a bad checksum and asks again with NACK (UM0701-02 §6.2.1.4);
//   - stale frames: a previous session's answer still waiting for the host
//     (protocols.md §1: "Stale responses after a host restart are common:
//     at start send ACK, drain input, then GetFirmwareVersion");
//   - a hung chip (Chip.Hang): cheap boards lock up after hours of polling
//     and answer nothing until RSTPD_N is pulsed (protocols.md §1);
//   - a USB serial adapter pulled out and plugged back (Sim.Unplug,
//     Sim.Replug).

// Faults injects link faults into a running link. The zero value injects
// none. Its methods are safe for concurrent use; each fault happens once.
type Faults struct {
	mu      sync.Mutex
	dropIn  int
	dropOut int
	outPos  int          // chip→host bytes that passed so far
	flips   []Corruption // pending, At counted in outPos
	stale   [][]byte
	kick    chan struct{}
}

// Corruption flips the bits of Mask in one chip→host byte: the At-th byte
// (0-based) that passes the fault stage.
type Corruption struct {
	At   int
	Mask byte
}

// FaultOptions are the faults a simulator starts with (Options.Faults).
type FaultOptions struct {
	// DropHostBytes is how many host→chip bytes are lost first.
	DropHostBytes int
	// DropChipBytes is how many chip→host bytes are lost first.
	DropChipBytes int
	// Corrupt flips bits in chip→host bytes, At counted from the start.
	Corrupt []Corruption
	// StaleFrames are chip→host frames from a previous session, sent as
	// soon as the link runs, before the host has asked anything: on HSU
	// they wait in the line (the pty) for whoever opens it, on SPI and I2C
	// the chip reports them ready from the first status read. A typical one
	// is an old InListPassiveTarget answer, D5 4B 01 01 ….
	StaleFrames [][]byte
	// Hung starts the chip hung (Chip.Hang): it answers nothing until a
	// reset (ResetPin, Chip.Reset).
	Hung bool
}

// newFaults returns the faults of o.
func newFaults(o FaultOptions) *Faults {
	f := &Faults{dropIn: o.DropHostBytes, dropOut: o.DropChipBytes}
	f.flips = append(f.flips, o.Corrupt...)
	for _, s := range o.StaleFrames {
		f.stale = append(f.stale, bytes.Clone(s))
	}
	return f
}

// DropHostBytes makes the next n bytes the host sends never reach the
// chip (n ≤ 0 cancels a pending drop). A command frame that loses bytes
// gets no ACK: the host's retry after its ACK timeout gets through.
func (f *Faults) DropHostBytes(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropIn = max(n, 0)
}

// DropChipBytes makes the next n bytes the chip sends never reach the host
// (n ≤ 0 cancels a pending drop). A host that gets a broken frame recovers
// with ACK (abort), draining its input and asking again.
func (f *Faults) DropChipBytes(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropOut = max(n, 0)
}

// CorruptChipByte flips the bits of mask in the chip→host byte that comes
// after skip more bytes (0: the next one). Corrupting a frame's data makes
// its DCS fail: the host's NACK gets the frame again, intact.
func (f *Faults) CorruptChipByte(skip int, mask byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flips = append(f.flips, Corruption{At: f.outPos + max(skip, 0), Mask: mask})
}

// InjectStale sends frame to the host now, as if the chip still had it from
// a previous session (see FaultOptions.StaleFrames). NACK does not repeat
// it: the chip's last answer stays what it was.
func (f *Faults) InjectStale(frame []byte) {
	f.mu.Lock()
	f.stale = append(f.stale, bytes.Clone(frame))
	k := f.kickLocked()
	f.mu.Unlock()
	select {
	case k <- struct{}{}:
	default:
	}
}

// Pending reports the faults still to happen: host→chip and chip→host bytes
// still to be dropped, bit flips and stale frames not sent yet.
func (f *Faults) Pending() (hostDrops, chipDrops, flips, stale int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dropIn, f.dropOut, len(f.flips), len(f.stale)
}

func (f *Faults) kickLocked() chan struct{} {
	if f.kick == nil {
		f.kick = make(chan struct{}, 1)
	}
	return f.kick
}

// kicker is signalled when stale frames were injected.
func (f *Faults) kicker() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.kickLocked()
}

// takeStale returns and forgets the stale frames.
func (f *Faults) takeStale() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stale
	f.stale = nil
	return s
}

// hostIn applies the host→chip faults to b.
func (f *Faults) hostIn(b []byte) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dropIn == 0 {
		return b
	}
	n := min(f.dropIn, len(b))
	f.dropIn -= n
	return b[n:]
}

// chipOut applies the chip→host faults to b; it never changes b itself.
func (f *Faults) chipOut(b []byte) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dropOut > 0 {
		n := min(f.dropOut, len(b))
		f.dropOut -= n
		b = b[n:]
	}
	var out []byte
	for i, fl := range f.flips {
		if fl.At < f.outPos || fl.At >= f.outPos+len(b) {
			continue
		}
		if out == nil {
			out = bytes.Clone(b)
		}
		out[fl.At-f.outPos] ^= fl.Mask
		f.flips[i].Mask = 0 // done
	}
	f.outPos += len(b)
	// Forget flips that are done or behind.
	kept := f.flips[:0]
	for _, fl := range f.flips {
		if fl.Mask != 0 && fl.At >= f.outPos {
			kept = append(kept, fl)
		}
	}
	f.flips = kept
	if out != nil {
		return out
	}
	return b
}

// Unplug models the USB serial adapter pulled out (HSU only; no effect on
// SPI and I2C): the link symlink is removed and the pty is closed, so the
// host's reads and writes on the device it has open fail (hangup, EIO).
// The board is powered by the adapter: the chip loses power. Replug brings
// it back.
func (s *Sim) Unplug() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bus != BusUART || s.unplugged || s.closed {
		return
	}
	s.unplugged = true
	s.held.Store(true) // no power
	s.chip.Reset()
	s.removeLinkLocked()
	s.stopServeLocked()
	s.slave.Close()
	s.log.Debug("unplugged", "pty", s.path)
}

// Replug models the adapter plugged back in: a new pty (Path changes, as a
// re-enumerated /dev/ttyUSBn may), the link symlink pointing to it again,
// and a chip that starts over in LowVbat at 115200 baud, as after power-on.
func (s *Sim) Replug() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("sim: replug: simulator closed")
	}
	if s.bus != BusUART {
		return fmt.Errorf("sim: replug: bus %s has no pty", s.bus)
	}
	if !s.unplugged {
		return nil
	}
	master, slave, err := openPTY()
	if err != nil {
		return err
	}
	s.master, s.slave, s.path = master, slave, slave.Name()
	if s.link != "" {
		if err := replaceSymlink(s.path, s.link); err != nil {
			master.Close()
			slave.Close()
			return err
		}
	}
	s.chip.Reset()
	s.held.Store(s.rstLow)
	s.unplugged = false
	s.startServeLocked()
	s.log.Debug("replugged", "pty", s.path)
	return nil
}

// removeLinkLocked removes the link symlink if it still points to the pty.
func (s *Sim) removeLinkLocked() error {
	if s.link == "" {
		return nil
	}
	if dest, err := os.Readlink(s.link); err == nil && dest == s.path {
		if err := os.Remove(s.link); err != nil {
			return fmt.Errorf("sim: remove link: %w", err)
		}
	}
	return nil
}
