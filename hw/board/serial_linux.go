//go:build linux

package board

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ReadTimeout is how long Serial.Read waits for a byte before it returns
// (0, nil), the same 100 ms tarm/serial gives OpenUART's ports: pn532.UART
// polls on it.
const ReadTimeout = 100 * time.Millisecond

// ErrHangup: the serial device went away (a USB adapter unplugged, the
// other end of a pty closed). The port is dead: close it and open again.
var ErrHangup = errors.New("board: serial port hung up")

// Serial is a raw 8N1 serial port whose speed can change while it is in
// use, for the PN532's SetSerialBaudrate.
//
// The package opens the tty itself rather than through tarm/serial (which
// OpenUART uses): tarm/serial can neither change the speed of an open port
// nor hand out its descriptor. Here the speed is a termios ioctl on the
// same descriptor, so the Serial keeps its identity across a switch and a
// goroutine blocked in Read is not disturbed: bytes that arrive after the
// switch are simply read at the new speed. The descriptor is non-blocking
// and served by Go's poller, so Close wakes a blocked Read at once and
// descriptor reuse cannot hand a late Read someone else's file.
//
// One goroutine may Read while others Write, SetBaud or Close.
type Serial struct {
	name string
	f    *os.File

	mu   sync.Mutex // serialises SetBaud; guards baud
	baud int

	closeOnce sync.Once
	closeErr  error
}

// OpenSerial opens the tty name raw 8N1 at baud (0: DefaultBaud), without
// flow control and ignoring modem lines, with Read timing out after
// ReadTimeout. Input already waiting is discarded: it is stale.
func OpenSerial(name string, baud int) (*Serial, error) {
	if baud == 0 {
		baud = DefaultBaud
	}
	if baud < 0 {
		return nil, fmt.Errorf("board: open %s: invalid baud rate %d", name, baud)
	}
	// O_NONBLOCK: open does not wait for carrier, and reads go through the
	// poller. O_NOCTTY: the port never becomes our controlling terminal.
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("board: open %s: %w", name, err)
	}
	if err := setRaw(fd, baud); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("board: open %s: %w", name, err)
	}
	// Exclusive use: a second open (a getty, another daemon) fails with
	// EBUSY instead of stealing bytes. Root can still open it.
	if err := unix.IoctlSetInt(fd, unix.TIOCEXCL, 0); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("board: open %s: TIOCEXCL: %w", name, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIFLUSH); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("board: open %s: flush input: %w", name, err)
	}
	return &Serial{name: name, f: os.NewFile(uintptr(fd), name), baud: baud}, nil
}

// setRaw puts the tty in raw 8N1 mode at baud.
func setRaw(fd, baud int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS2)
	if err != nil {
		if errors.Is(err, unix.ENOTTY) {
			return errors.New("not a serial port")
		}
		return fmt.Errorf("TCGETS2: %w", err)
	}
	// cfmakeraw (termios(3)), plus no software flow control.
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR |
		unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF | unix.IXANY | unix.INPCK
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.CSTOPB | unix.CRTSCTS
	t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL
	// VMIN 0, VTIME 1 (100 ms). With O_NONBLOCK the kernel answers EAGAIN
	// and the poller waits; Read applies ReadTimeout as a deadline. VTIME
	// must not be 0: n_tty then returns 0 (EOF) instead of EAGAIN.
	t.Cc[unix.VMIN] = 0
	t.Cc[unix.VTIME] = 1
	setSpeed(t, baud)
	return setTermios(fd, unix.TCSETS2, t, baud)
}

// rates are the speeds with a Bxxx constant. Anything else (the PN532's
// 1 288 000) goes through BOTHER with the number in c_ospeed/c_ispeed.
var rates = map[int]uint32{
	1200: unix.B1200, 2400: unix.B2400, 4800: unix.B4800, 9600: unix.B9600,
	19200: unix.B19200, 38400: unix.B38400, 57600: unix.B57600,
	115200: unix.B115200, 230400: unix.B230400, 460800: unix.B460800,
	500000: unix.B500000, 576000: unix.B576000, 921600: unix.B921600,
	1000000: unix.B1000000, 1152000: unix.B1152000, 1500000: unix.B1500000,
	2000000: unix.B2000000, 2500000: unix.B2500000, 3000000: unix.B3000000,
	3500000: unix.B3500000, 4000000: unix.B4000000,
}

// setSpeed sets both directions to baud. unix.Termios is the kernel's
// termios2, so TCSETS2 carries Ispeed/Ospeed for BOTHER; clearing CIBAUD
// makes the input speed follow the output speed.
func setSpeed(t *unix.Termios, baud int) {
	t.Cflag &^= unix.CBAUD | unix.CIBAUD
	if b, ok := rates[baud]; ok {
		t.Cflag |= b
	} else {
		t.Cflag |= unix.BOTHER
	}
	t.Ispeed, t.Ospeed = uint32(baud), uint32(baud)
}

// speedTolerance is how far the speed the driver settles on may be from the
// one asked for. A UART receiver copes with a few per cent; a driver that
// cannot get within 2 % (a mini UART at a low core clock, a cheap USB
// adapter at 1 288 000) would corrupt frames, so fail loudly instead.
const speedTolerance = 0.02

// setTermios applies t with req (TCSETS2 or TCSETSW2) and checks the speed
// the driver reports back.
func setTermios(fd int, req uint, t *unix.Termios, baud int) error {
	if err := unix.IoctlSetTermios(fd, req, t); err != nil {
		return fmt.Errorf("set %d baud: %w", baud, err)
	}
	got, err := unix.IoctlGetTermios(fd, unix.TCGETS2)
	if err != nil {
		return fmt.Errorf("TCGETS2: %w", err)
	}
	if d := float64(int(got.Ospeed)-baud) / float64(baud); d > speedTolerance || d < -speedTolerance {
		return fmt.Errorf("asked for %d baud, the driver set %d", baud, got.Ospeed)
	}
	return nil
}

// SetBaud switches the port to baud. Output already written is sent at the
// old speed first (TCSETSW2 drains it): the host's ACK after
// SetSerialBaudrate must leave at the speed the chip still listens at.
// A concurrent Read carries on at the new speed.
func (s *Serial) SetBaud(baud int) error {
	if baud <= 0 {
		return fmt.Errorf("board: %s: invalid baud rate %d", s.name, baud)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rc, err := s.f.SyscallConn()
	if err != nil {
		return fmt.Errorf("board: %s to %d baud: %w", s.name, baud, err)
	}
	var serr error
	// Control, not Fd: Fd would switch the descriptor back to blocking
	// mode and take it away from the poller.
	if err := rc.Control(func(fd uintptr) {
		t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS2)
		if err != nil {
			serr = fmt.Errorf("TCGETS2: %w", err)
			return
		}
		setSpeed(t, baud)
		serr = setTermios(int(fd), unix.TCSETSW2, t, baud)
	}); err != nil {
		return fmt.Errorf("board: %s to %d baud: %w", s.name, baud, err)
	}
	if serr != nil {
		return fmt.Errorf("board: %s: %w", s.name, serr)
	}
	s.baud = baud
	return nil
}

// Baud is the port's current speed.
func (s *Serial) Baud() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.baud
}

// Read reads what has arrived, waiting at most ReadTimeout for the first
// byte. A timeout returns (0, nil), as tarm/serial's ports do. A device
// that went away returns an error wrapping ErrHangup.
func (s *Serial) Read(b []byte) (int, error) {
	if err := s.f.SetReadDeadline(time.Now().Add(ReadTimeout)); err != nil {
		return 0, fmt.Errorf("board: read %s: %w", s.name, err)
	}
	n, err := s.f.Read(b)
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return n, nil
	case errors.Is(err, io.EOF):
		// A tty in this mode reads 0 only after a hangup (n_tty_read).
		return n, fmt.Errorf("board: read %s: %w", s.name, ErrHangup)
	case errors.Is(err, unix.EIO):
		// The other side of a pty closed, or the USB device vanished.
		return n, fmt.Errorf("board: read %s: %w: %w", s.name, ErrHangup, err)
	}
	return n, fmt.Errorf("board: read %s: %w", s.name, err)
}

// Write writes all of b.
func (s *Serial) Write(b []byte) (int, error) {
	n, err := s.f.Write(b)
	if err != nil {
		return n, fmt.Errorf("board: write %s: %w", s.name, err)
	}
	return n, nil
}

// Close closes the port; a blocked Read returns with an error. Closing
// again does nothing and returns the first result.
func (s *Serial) Close() error {
	s.closeOnce.Do(func() {
		if err := s.f.Close(); err != nil {
			s.closeErr = fmt.Errorf("board: close %s: %w", s.name, err)
		}
	})
	return s.closeErr
}

// Name is the device path.
func (s *Serial) Name() string { return s.name }

func (s *Serial) String() string { return fmt.Sprintf("serial %s at %d baud", s.name, s.Baud()) }
