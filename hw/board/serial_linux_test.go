//go:build linux

package board

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// openPTY returns a pty pair and a Serial on its slave side.
func openPTY(t *testing.T, baud int) (master, slave *os.File, s *Serial) {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close(); slave.Close() })
	s, err = OpenSerial(slave.Name(), baud)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return master, slave, s
}

func termios(t *testing.T, f *os.File) *unix.Termios {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS2)
	if err != nil {
		t.Fatal(err)
	}
	return tio
}

func readFull(t *testing.T, r io.Reader, n int) []byte {
	t.Helper()
	got := make([]byte, 0, n)
	deadline := time.Now().Add(2 * time.Second)
	buf := make([]byte, n)
	for len(got) < n && time.Now().Before(deadline) {
		m, err := r.Read(buf[:n-len(got)])
		got = append(got, buf[:m]...)
		if err != nil {
			t.Fatalf("read after % X: %v", got, err)
		}
	}
	return got
}

var ack = []byte{0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00}

func TestSerialBothWaysRaw8N1(t *testing.T) {
	master, slave, s := openPTY(t, 0)
	if s.Baud() != DefaultBaud {
		t.Fatalf("Baud %d, want %d", s.Baud(), DefaultBaud)
	}
	tio := termios(t, slave)
	if tio.Cflag&unix.CBAUD != unix.B115200 || tio.Ospeed != 115200 {
		t.Errorf("speed bits %#o ospeed %d, want B115200", tio.Cflag&unix.CBAUD, tio.Ospeed)
	}
	if tio.Cflag&unix.CSIZE != unix.CS8 || tio.Cflag&(unix.PARENB|unix.CSTOPB|unix.CRTSCTS) != 0 {
		t.Errorf("cflag %#o is not 8N1 without flow control", tio.Cflag)
	}
	if tio.Lflag&(unix.ICANON|unix.ECHO|unix.ISIG) != 0 || tio.Oflag&unix.OPOST != 0 || tio.Iflag&(unix.ICRNL|unix.IXON) != 0 {
		t.Errorf("not raw: iflag %#o oflag %#o lflag %#o", tio.Iflag, tio.Oflag, tio.Lflag)
	}

	// Host to chip: every byte value, including the ones a cooked tty
	// would eat or translate (CR, ^C, ^S, ^D, DEL).
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	if n, err := s.Write(all); err != nil || n != len(all) {
		t.Fatalf("Write %d, %v", n, err)
	}
	if got := readFull(t, master, len(all)); !bytes.Equal(got, all) {
		t.Fatalf("master read % X", got)
	}
	// Chip to host.
	if _, err := master.Write(all); err != nil {
		t.Fatal(err)
	}
	if got := readFull(t, s, len(all)); !bytes.Equal(got, all) {
		t.Fatalf("Serial read % X", got)
	}
}

func TestSerialReadTimesOutWithoutError(t *testing.T) {
	_, _, s := openPTY(t, 0)
	for range 3 {
		start := time.Now()
		n, err := s.Read(make([]byte, 16))
		took := time.Since(start)
		if n != 0 || (err != nil && err != io.EOF) {
			t.Fatalf("idle Read = %d, %v", n, err)
		}
		if took < ReadTimeout/2 || took > 2*time.Second {
			t.Fatalf("idle Read returned after %v, want about %v", took, ReadTimeout)
		}
	}
}

func TestSerialSetBaud(t *testing.T) {
	master, slave, s := openPTY(t, 115200)
	for _, tc := range []struct {
		baud  int
		cbaud uint32
	}{
		{921600, unix.B921600},
		{9600, unix.B9600},
		{1288000, unix.BOTHER}, // PN532 BR 08: no Bxxx constant
		{115200, unix.B115200},
	} {
		if err := s.SetBaud(tc.baud); err != nil {
			t.Fatalf("SetBaud(%d): %v", tc.baud, err)
		}
		tio := termios(t, slave)
		if tio.Cflag&unix.CBAUD != tc.cbaud || tio.Ospeed != uint32(tc.baud) {
			t.Errorf("after SetBaud(%d): speed bits %#o ospeed %d, want %#o", tc.baud, tio.Cflag&unix.CBAUD, tio.Ospeed, tc.cbaud)
		}
		if tio.Cflag&unix.CIBAUD != 0 {
			t.Errorf("after SetBaud(%d): input speed %#o set separately", tc.baud, tio.Cflag&unix.CIBAUD)
		}
		if tio.Cflag&unix.CSIZE != unix.CS8 || tio.Lflag&unix.ICANON != 0 {
			t.Errorf("after SetBaud(%d): raw 8N1 lost (cflag %#o lflag %#o)", tc.baud, tio.Cflag, tio.Lflag)
		}
		if s.Baud() != tc.baud {
			t.Errorf("Baud %d, want %d", s.Baud(), tc.baud)
		}
	}
	if got := s.String(); !strings.Contains(got, "115200") {
		t.Errorf("String %q", got)
	}
	if _, err := s.Write(ack); err != nil {
		t.Fatal(err)
	}
	if got := readFull(t, master, len(ack)); !bytes.Equal(got, ack) {
		t.Fatalf("after switching: master read % X", got)
	}
}

// A reader blocked in Read (pn532.UART's goroutine) keeps working across a
// speed switch: the Serial is the same object on the same descriptor.
func TestSerialSetBaudWhileReading(t *testing.T) {
	master, _, s := openPTY(t, 115200)
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		var got []byte
		buf := make([]byte, 64)
		deadline := time.Now().Add(3 * time.Second)
		for len(got) < 2*len(ack) && time.Now().Before(deadline) {
			n, err := s.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				done <- result{got, err}
				return
			}
		}
		done <- result{got, nil}
	}()
	if _, err := master.Write(ack); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if err := s.SetBaud(921600); err != nil {
		t.Fatal(err)
	}
	if _, err := master.Write(ack); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || !bytes.Equal(r.b, append(append([]byte(nil), ack...), ack...)) {
		t.Fatalf("reader got % X, %v", r.b, r.err)
	}
}

func TestSerialStaleInputDiscardedAtOpen(t *testing.T) {
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer slave.Close()
	// Bytes left over from before a restart, queued before OpenSerial.
	if _, err := master.Write([]byte("stale\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the pty hands bytes over from a kernel worker
	s, err := OpenSerial(slave.Name(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.Read(make([]byte, 8)); n != 0 || err != nil {
		t.Fatalf("fresh port read %d, %v", n, err)
	}
}

func TestSerialHangup(t *testing.T) {
	master, _, s := openPTY(t, 0)
	master.Close()
	var err error
	for range 5 {
		if _, err = s.Read(make([]byte, 8)); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrHangup) {
		t.Fatalf("read after the far end closed: %v, want ErrHangup", err)
	}
}

func TestSerialCloseWakesReader(t *testing.T) {
	_, _, s := openPTY(t, 0)
	errc := make(chan error, 1)
	go func() {
		for {
			if _, err := s.Read(make([]byte, 8)); err != nil {
				errc <- err
				return
			}
		}
	}()
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("read after Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not wake the reader")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.SetBaud(9600); err == nil {
		t.Fatal("SetBaud on a closed port succeeded")
	}
}

func TestOpenSerialErrors(t *testing.T) {
	if _, err := OpenSerial("/dev/does-not-exist-kazashi", 0); err == nil ||
		!strings.HasPrefix(err.Error(), "board: open /dev/does-not-exist-kazashi") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing device: %v", err)
	}
	f, err := os.CreateTemp(t.TempDir(), "notatty")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := OpenSerial(f.Name(), 0); err == nil || !strings.Contains(err.Error(), "not a serial port") {
		t.Fatalf("regular file: %v", err)
	}
	_, slave, s := openPTY(t, 0)
	if err := s.SetBaud(0); err == nil {
		t.Fatal("SetBaud(0) succeeded")
	}
	if _, err := OpenSerial(slave.Name(), -1); err == nil {
		t.Fatal("negative baud accepted")
	}
}

// Host's UART is the switchable port pn532.NewUART looks for.
func TestHostOpenUARTCanSwitch(t *testing.T) {
	_, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	p, err := Host{}.OpenUART(slave.Name(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	sw, ok := p.(interface{ SetBaud(int) error })
	if !ok {
		t.Fatalf("%T has no SetBaud", p)
	}
	if err := sw.SetBaud(460800); err != nil {
		t.Fatal(err)
	}
	if _, err := (Host{}).OpenUART("/dev/does-not-exist-kazashi", 0); err == nil {
		t.Fatal("opened a missing device")
	}
}
