package sim

import (
	"fmt"
	"os"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair with the slave in raw mode (8 bits,
// no echo, no line discipline, no CR/LF translation) at 115200 baud, so
// bytes pass unchanged whoever opens the slave path and before they set
// their own termios.
//
// A pty moves bytes at memory speed whatever its speed setting, but it
// keeps the speed the host set (termios belongs to the terminal, not to a
// descriptor): the HSU link reads it (ptyBaud) to give a host whose port
// disagrees with the chip (after SetSerialBaudRate) the garbage a real
// UART would receive. The pty's own default, 38400, would make a host that
// never sets a speed disagree with the chip's 115200.
func openPTY() (master, slave *os.File, err error) {
	master, slave, err = pty.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("sim: open pty: %w", err)
	}
	if err := makeRaw(int(slave.Fd())); err != nil {
		master.Close()
		slave.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// makeRaw applies cfmakeraw(3) and cfsetspeed(115200) to fd.
func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS2)
	if err != nil {
		return fmt.Errorf("sim: get termios: %w", err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	t.Cflag &^= unix.CBAUD | unix.CIBAUD
	t.Cflag |= unix.B115200
	t.Ispeed, t.Ospeed = defaultBaud, defaultBaud
	if err := unix.IoctlSetTermios(fd, unix.TCSETS2, t); err != nil {
		return fmt.Errorf("sim: set termios: %w", err)
	}
	return nil
}
