package sim

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/pin"
	"periph.io/x/conn/v3/spi"
)

// The PN532's SPI slave, as a periph.io SPI port.
//
// What the model follows, and where from:
//
//   - Mode 0 (CPOL 0, CPHA 0), LSB first, at most 5 MHz (UM0701-02 §6.2.5;
//     AN10609 "PN532 C106 application note": SPI mode 0 only, "no more SPI
//     mode 1, 2, 3"; protocols.md §1). The port sees the bytes as the host
//     controller shifted them, MSB first unless the host asked for
//     spi.LSBFirst: a host that neither reverses the bits in software nor
//     sets LSBFirst is misunderstood, exactly like on real hardware (the
//     Raspberry Pi's controller cannot shift LSB first; libnfc
//     buses/spi.c reverses every byte). Another mode is accepted, since a
//     controller will happily clock it, and modelled as a one-bit slip in
//     both directions: the chip samples MOSI one edge late and the host
//     samples MISO one edge late, so both sides read garbage.
//   - Every NSS-low transaction (Tx, or TxPackets up to a packet without
//     KeepCS) starts with a prefix byte (UM0701-02 §6.2.5): 01 data write
//     (a frame follows), 02 status read (the chip shifts out 01 while it
//     has a frame ready, ACK or response, else 00), 03 data read (the chip
//     shifts out its pending bytes). Other prefixes are ignored.
//   - The shift register: during each byte the chip shifts out what it
//     loaded at the end of the previous byte, and loads the next byte at
//     the end of each byte of the transaction. So the first byte of every
//     transaction (the prefix slot) carries whatever was left in the
//     register; after a status read that is the status, and during a data
//     read the chip already loads the next pending byte after the last one
//     the host clocks. This is what libnfc's pn532_spi.c documents from a
//     logic trace (pn532_spi_receive_next_chunk: "the PN532 sends first
//     byte of the second and successive response chunks at the same time
//     as host sends SPI_DATAREAD byte", and it "does not shift the internal
//     register" on a transaction without a prefix), and what a logic
//     trace of GetFirmwareVersion published on Stack Overflow (question
//     28541355) shows: MISO FF during the data write, 01 in the prefix
//     slot after a status read, and after the host read the 6 ACK bytes
//     the answer read back as 00 FF 06 FA D5 03 32 01 06 07 E8 00, its
//     first preamble byte gone into the register. Hosts must scan for
//     00 FF, never parse at fixed offsets (protocols.md §1).
//   - Fewer bytes than the frame: the rest stays pending and the status
//     stays 01; the next data read goes on where the last stopped (libnfc
//     reads a frame in chunks, each chunk a new transaction). More bytes
//     than pending: after the last byte the chip shifts out 00 (no source
//     documents this; assumed), and a frame that became ready meanwhile
//     (the answer after the ACK) follows the one before it directly.
//   - During a data write MISO reads FF (the trace above).
//   - LowVbat and PowerDown: the SPI interface is not driven and MISO reads
//     FF (libnfc pn532_spi_wakeup: "If PN532 is powered down, the byte will
//     be 0xff (MISO line is high)"). NSS going low wakes the chip (when SPI
//     is a wake-up source, UM0701-02 §7.2.11), but it only understands a
//     transaction whose first byte ends SPIWakeDelay after that.
//   - PowerDown: the chip can only send its answer when the host reads it,
//     so what it queued stays readable after it fell asleep; only then does
//     MISO read FF.
//   - A hung chip (Chip.Hang) never reloads the register: MISO repeats one
//     byte and writes are lost. RSTPD_N low: MISO reads FF.
//
// Each transaction adds its bytes, 8 clock cycles each at the connection's
// frequency, to the chip's Meter.

// SPIWakeDelay is how long the chip needs after NSS went low in LowVbat or
// PowerDown before it understands a transaction. Uncertain (?): the figure
// was not found in UM0701-02 or the datasheet; 2 ms is what field drivers
// hold NSS low for (Seeed-Studio's PN532_SPI::wakeup, as ported to mbed in
// LibPN532; ESPHome pn532_spi: "Enable the SS line for at least 2ms");
// libnfc (pn532_spi_wakeup) waits 1 ms and then talks at 5 kHz, so its
// first byte ends 2.6 ms after NSS fell.
const SPIWakeDelay = 2 * time.Millisecond

// spiMaxHz is the PN532's highest SPI clock (datasheet: 5 MHz; protocols.md
// §1), also the simulated controller's: the lowest of the device's rated
// speed, the port limit and this is used, as periph's Connect does.
const spiMaxHz = 5 * physic.MegaHertz

// SPI prefix bytes (UM0701-02 §6.2.5).
const (
	spiDataWrite  = 0x01
	spiStatusRead = 0x02
	spiDataRead   = 0x03
)

// PowerDown WakeUpEnable bits (UM0701-02 §7.2.11).
const (
	wakeSPI = 0x20
	wakeI2C = 0x80
)

// SPIPort is the simulated PN532's SPI bus, a periph.io spi.PortCloser: a
// host driver Connects it in spi.Mode0 (with spi.LSBFirst, or reversing
// the bits itself) and talks with Tx or TxPackets. Get it from Sim.SPI.
type SPIPort struct {
	s   *spiSlave
	now func() time.Time

	mu     sync.Mutex
	limit  physic.Frequency
	conn   *spiConn
	closed bool
}

var (
	_ spi.PortCloser = (*SPIPort)(nil)
	_ conn.Resource  = (*SPIPort)(nil)
	_ spi.Conn       = (*spiConn)(nil)
	_ conn.Limits    = (*spiConn)(nil)
	_ conn.Resource  = (*spiConn)(nil)
)

// String implements spi.Port.
func (p *SPIPort) String() string { return "sim-spi(PN532)" }

// Halt implements conn.Resource; the port has nothing to stop.
func (p *SPIPort) Halt() error { return nil }

// Close ends the host's use of the port (its Conn fails afterwards). The
// chip keeps running; Sim.SPI opens the port again, and Connect may then be
// called again, as after reopening /dev/spidev.
func (p *SPIPort) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.conn = nil
	return nil
}

func (p *SPIPort) reopen() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = false
}

// LimitSpeed implements spi.PortCloser.
func (p *SPIPort) LimitSpeed(f physic.Frequency) error {
	if f <= 0 {
		return fmt.Errorf("sim-spi: invalid speed %s", f)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limit = f
	return nil
}

// Connect implements spi.Port. It accepts 8-bit words only, with NSS
// (not spi.NoCS: the PN532 needs NSS to frame transactions) and separate
// MOSI and MISO (not spi.HalfDuplex). The clock is the lowest of f, the
// LimitSpeed value and 5 MHz (0: no limit); it sets the link time on the
// Meter. As on periph's ports, Connect can be called once (until Close).
func (p *SPIPort) Connect(f physic.Frequency, mode spi.Mode, bits int) (spi.Conn, error) {
	if f < 0 {
		return nil, fmt.Errorf("sim-spi: invalid speed %s", f)
	}
	if bits != 8 {
		return nil, fmt.Errorf("sim-spi: %d bits per word: the PN532 takes bytes", bits)
	}
	if mode&spi.HalfDuplex != 0 {
		return nil, errors.New("sim-spi: half duplex: the PN532 has separate MOSI and MISO")
	}
	if mode&spi.NoCS != 0 {
		return nil, errors.New("sim-spi: NoCS: the PN532 needs NSS to frame its transactions")
	}
	if mode&^(spi.Mode3|spi.LSBFirst) != 0 {
		return nil, fmt.Errorf("sim-spi: unknown mode %s", mode)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("sim-spi: port closed")
	}
	if p.conn != nil {
		return nil, errors.New("sim-spi: Connect can only be called once")
	}
	hz := spiMaxHz
	for _, l := range []physic.Frequency{f, p.limit} {
		if l > 0 && l < hz {
			hz = l
		}
	}
	p.conn = &spiConn{p: p, hz: hz, mode: mode}
	return p.conn, nil
}

// spiConn is one connection on the port.
type spiConn struct {
	p    *SPIPort
	hz   physic.Frequency
	mode spi.Mode
}

func (c *spiConn) String() string {
	return fmt.Sprintf("sim-spi(PN532) %s %s", c.hz, c.mode)
}

// Duplex implements conn.Conn.
func (c *spiConn) Duplex() conn.Duplex { return conn.Full }

// Halt implements conn.Resource: it ends a transaction left open by a
// packet with KeepCS.
func (c *spiConn) Halt() error {
	return c.TxPackets(nil)
}

// MaxTxSize implements conn.Limits (spidev's default buffer size).
func (c *spiConn) MaxTxSize() int { return 4096 }

// Tx implements conn.Conn: one NSS-low transaction. w and r must have the
// same length when both are given.
func (c *spiConn) Tx(w, r []byte) error {
	return c.TxPackets([]spi.Packet{{W: w, R: r}})
}

// TxPackets implements spi.Conn. NSS stays low from one packet to the next
// while KeepCS is set, also across calls when the last packet has it.
func (c *spiConn) TxPackets(ps []spi.Packet) error {
	c.p.mu.Lock()
	ok := c.p.conn == c && !c.p.closed
	c.p.mu.Unlock()
	if !ok {
		return errors.New("sim-spi: connection closed")
	}
	n := 0
	for _, p := range ps {
		if len(p.W) > 0 && len(p.R) > 0 && len(p.W) != len(p.R) {
			return errors.New("sim-spi: w and r must be the same size")
		}
		if p.BitsPerWord != 0 && p.BitsPerWord != 8 {
			return fmt.Errorf("sim-spi: %d bits per word", p.BitsPerWord)
		}
		n += max(len(p.W), len(p.R))
	}
	if n > c.MaxTxSize() {
		return fmt.Errorf("sim-spi: %d bytes, at most %d per transfer", n, c.MaxTxSize())
	}
	mosi := make([]byte, 0, n)
	for _, p := range ps {
		k := max(len(p.W), len(p.R))
		mosi = append(mosi, p.W...)
		mosi = append(mosi, make([]byte, k-len(p.W))...)
	}
	start := c.p.now()
	var miso []byte
	s := c.p.s
	if len(ps) == 0 {
		// Halt: NSS high.
		return s.e.call(func() { s.end() })
	}
	err := s.e.call(func() { miso = s.transfer(ps, mosi, start, c.hz, c.mode) })
	if err != nil {
		return fmt.Errorf("sim-spi: %w", err)
	}
	off := 0
	for _, p := range ps {
		k := max(len(p.W), len(p.R))
		copy(p.R, miso[off:off+k])
		off += k
	}
	return nil
}

// spiSlave is the chip's SPI interface. It lives in the engine's goroutine
// (every transaction is an engine call).
type spiSlave struct {
	e   *engine
	irq *IRQPin

	out []byte // chip→host bytes ready: status 01 while not empty
	reg byte   // the shift register: what MISO shifts out next

	inTx   bool // NSS low
	joined bool // the chip takes part in this transaction
	nbytes int  // bytes clocked in this transaction
	prefix byte
	data   []byte    // bytes after a data-write prefix
	wakeAt time.Time // woken by NSS: deaf until then
}

// emit implements linkPort.
func (s *spiSlave) emit(b []byte) error {
	s.out = append(s.out, b...)
	s.irq.set(len(s.out) > 0)
	return nil
}

// reset implements linkPort: the chip's output buffer is gone.
func (s *spiSlave) reset() {
	s.out, s.reg = nil, 0x00
	s.joined = false
	s.data = nil
	s.irq.set(false)
}

// transfer clocks one call's packets; it returns MISO as the host reads it.
func (s *spiSlave) transfer(ps []spi.Packet, mosi []byte, start time.Time, hz physic.Frequency, mode spi.Mode) []byte {
	bt := SPIByteTime(int(hz / physic.Hertz))
	s.e.c.meter.Link(len(mosi), time.Duration(len(mosi))*bt)
	in := spiWireToChip(mosi, mode)
	out := make([]byte, len(in))
	t := start
	i := 0
	for _, p := range ps {
		if !s.inTx {
			s.begin(t)
		}
		for range max(len(p.W), len(p.R)) {
			t = t.Add(bt) // the end of this byte
			out[i] = s.clock(in[i], t)
			i++
		}
		if !p.KeepCS {
			s.end()
		}
	}
	return spiChipToWire(out, mode)
}

// begin is NSS going low at t.
func (s *spiSlave) begin(t time.Time) {
	s.inTx, s.nbytes, s.prefix, s.data = true, 0, 0, nil
	s.e.syncChip()
	if s.e.isHeld() || !s.e.sleeping() || len(s.out) > 0 {
		return
	}
	if s.e.wakeBy(wakeSPI) {
		s.wakeAt = t.Add(SPIWakeDelay)
	}
}

// listening reports whether the chip serves its SPI interface: awake, or
// still handing out what it queued before it went to sleep (the PowerDown
// answer: on SPI the chip can only send it when the host reads it).
func (s *spiSlave) listening() bool {
	return !s.e.isHeld() && (!s.e.sleeping() || len(s.out) > 0)
}

// clock shifts one byte: in from the host, the returned byte to it. t is
// when the byte's last bit is clocked.
func (s *spiSlave) clock(in byte, t time.Time) byte {
	if s.nbytes == 0 {
		s.joined = s.listening() && !t.Before(s.wakeAt)
	}
	s.nbytes++
	if !s.joined || s.e.isHeld() {
		return 0xFF // MISO not driven: the pull-up
	}
	if s.e.c.Hung() {
		return s.reg
	}
	out := s.reg
	if s.nbytes == 1 {
		s.prefix = in
	} else if s.prefix == spiDataWrite {
		s.data = append(s.data, in)
	}
	switch s.prefix {
	case spiDataWrite:
		s.reg = 0xFF
	case spiStatusRead:
		s.reg = s.status()
	case spiDataRead:
		s.reg = s.pop()
	}
	return out
}

// status is the SPI status byte: bit 0 set when a frame is ready.
func (s *spiSlave) status() byte {
	if len(s.out) > 0 {
		return 0x01
	}
	return 0x00
}

func (s *spiSlave) pop() byte {
	if len(s.out) == 0 {
		return 0x00
	}
	b := s.out[0]
	s.out = s.out[1:]
	s.irq.set(len(s.out) > 0)
	return b
}

// end is NSS going high: a data write is handed to the firmware.
func (s *spiSlave) end() {
	if !s.inTx {
		return
	}
	s.inTx = false
	data := s.data
	s.data = nil
	if s.joined && s.prefix == spiDataWrite && len(data) > 0 {
		_ = s.e.hostBytes(data, false) // only fails when the engine stops
	}
}

// spiWireToChip turns MOSI bytes as the host controller shifted them into
// the bytes the chip assembles, LSB first (see the mode model above).
func spiWireToChip(b []byte, mode spi.Mode) []byte {
	bits := spiBits(b, mode&spi.LSBFirst == 0)
	if mode&spi.Mode3 != spi.Mode0 {
		bits = slipBit(bits, mode)
	}
	return spiBytes(bits, false)
}

// spiChipToWire turns the chip's MISO bytes, shifted LSB first, into the
// bytes the host controller assembles.
func spiChipToWire(b []byte, mode spi.Mode) []byte {
	bits := spiBits(b, false)
	if mode&spi.Mode3 != spi.Mode0 {
		bits = slipBit(bits, mode)
	}
	return spiBytes(bits, mode&spi.LSBFirst == 0)
}

// spiBits returns the bits of b in the order they are shifted.
func spiBits(b []byte, msbFirst bool) []byte {
	bits := make([]byte, 0, 8*len(b))
	for _, x := range b {
		for i := range 8 {
			if msbFirst {
				bits = append(bits, x>>(7-i)&1)
			} else {
				bits = append(bits, x>>i&1)
			}
		}
	}
	return bits
}

// spiBytes assembles shifted bits into bytes.
func spiBytes(bits []byte, msbFirst bool) []byte {
	out := make([]byte, len(bits)/8)
	for i, v := range bits {
		if msbFirst {
			out[i/8] |= v << (7 - i%8)
		} else {
			out[i/8] |= v << (i % 8)
		}
	}
	return out
}

// slipBit delays a bit stream by one bit, the line's idle level (CPOL)
// coming first: a receiver sampling one edge late.
func slipBit(bits []byte, mode spi.Mode) []byte {
	if len(bits) == 0 {
		return bits
	}
	idle := byte(0)
	if mode&spi.Mode2 != 0 {
		idle = 1
	}
	return append([]byte{idle}, bits[:len(bits)-1]...)
}

// IRQPin is the chip's P70_IRQ output as a periph.io gpio.PinIn: it reads
// Low while the chip has a frame ready for the host (ACK or response) and
// High once the host has read it (UM0701-02 §6.2.2, the dialog: P70_IRQ
// goes low when the chip has something to send; PN532 datasheet: P70_IRQ,
// active low). Wait for it with In(gpio.PullNoChange, gpio.FallingEdge)
// and WaitForEdge. On SPI and I2C only (Sim.IRQ).
type IRQPin struct {
	mu    sync.Mutex
	ready bool
	edge  gpio.Edge
	pull  gpio.Pull
	edges chan struct{} // one pending edge
	halt  chan struct{}
}

var _ gpio.PinIn = (*IRQPin)(nil)

func newIRQPin() *IRQPin {
	return &IRQPin{edges: make(chan struct{}, 1), halt: make(chan struct{}), pull: gpio.PullNoChange}
}

// set is the chip driving the pin: ready pulls it low.
func (p *IRQPin) set(ready bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ready == ready {
		return
	}
	p.ready = ready
	if p.edge == gpio.BothEdges || p.edge == gpio.FallingEdge && ready || p.edge == gpio.RisingEdge && !ready {
		select {
		case p.edges <- struct{}{}:
		default:
		}
	}
}

// String implements pin.Pin.
func (p *IRQPin) String() string { return "sim-P70_IRQ" }

// Halt implements conn.Resource: it unblocks WaitForEdge.
func (p *IRQPin) Halt() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.halt)
	p.halt = make(chan struct{})
	return nil
}

// Name implements pin.Pin.
func (p *IRQPin) Name() string { return "P70_IRQ" }

// Number implements pin.Pin.
func (p *IRQPin) Number() int { return -1 }

// Function implements pin.Pin.
func (p *IRQPin) Function() string { return string(p.Func()) }

// Func implements pin.PinFunc.
func (p *IRQPin) Func() pin.Func { return gpio.IN }

// In implements gpio.PinIn: it selects the edges WaitForEdge waits for and
// forgets an edge seen before. The pull has no effect (the chip drives the
// line).
func (p *IRQPin) In(pull gpio.Pull, edge gpio.Edge) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.edge = edge
	if pull != gpio.PullNoChange {
		p.pull = pull
	}
	select {
	case <-p.edges:
	default:
	}
	return nil
}

// Read implements gpio.PinIn: Low while a frame is ready.
func (p *IRQPin) Read() gpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return gpio.Level(!p.ready)
}

// WaitForEdge implements gpio.PinIn: it waits for an edge selected with In
// (one edge that came since is reported at once), at most timeout (-1: no
// limit), or until Halt.
func (p *IRQPin) WaitForEdge(timeout time.Duration) bool {
	p.mu.Lock()
	edges, halt, edge := p.edges, p.halt, p.edge
	p.mu.Unlock()
	if edge == gpio.NoEdge {
		return false
	}
	var tc <-chan time.Time
	if timeout >= 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		tc = t.C
	}
	select {
	case <-edges:
		return true
	case <-tc:
		return false
	case <-halt:
		return false
	}
}

// Pull implements gpio.PinIn.
func (p *IRQPin) Pull() gpio.Pull {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pull
}

// DefaultPull implements gpio.PinIn.
func (p *IRQPin) DefaultPull() gpio.Pull { return gpio.PullNoChange }
