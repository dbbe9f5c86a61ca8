package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kazashi/kazashi/drivers/pn532"
)

// ReaderLink is a PN532 bus opened for probe.
type ReaderLink struct {
	Transport pn532.Transport
	Bus       string
	Close     func() error
	// Recording returns the bus transactions when opened with record.
	Recording func(note string) *pn532.Recording
}

// ReaderOpener opens the bus described by the daemon's "reader"
// configuration object. The kazashictl main package supplies it (only
// main and hw/ packages touch devices).
type ReaderOpener func(ctx context.Context, reader json.RawMessage, record bool) (*ReaderLink, error)

// ProbeResult is what probe found.
type ProbeResult struct {
	Bus      string
	Firmware string
	Baud     int    // HSU speed in use; 0 on SPI/I2C
	Target   string // "" when the field was empty
}

// Probe initialises the chip on the configured bus, switches the UART to
// the configured speed (not while recording: a recorded port cannot
// change speed), polls once for Type B and once for Type A, and halts
// the chip (RF off, back to 115200; never PowerDown). With rec it writes
// the bus transactions, the form the playback tests read, to rec.
func Probe(ctx context.Context, open ReaderOpener, configJSON []byte, rec io.Writer) (*ProbeResult, error) {
	var cfg struct {
		Reader json.RawMessage `json:"reader"`
	}
	if err := json.Unmarshal(configJSON, &cfg); err != nil {
		return nil, fmt.Errorf("reader configuration: %w", err)
	}
	if len(cfg.Reader) == 0 {
		return nil, errors.New("reader configuration: no \"reader\" object")
	}
	var rc struct {
		Baud int `json:"baud"`
	}
	if err := json.Unmarshal(cfg.Reader, &rc); err != nil {
		return nil, fmt.Errorf("reader configuration: %w", err)
	}
	l, err := open(ctx, cfg.Reader, rec != nil)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	res := &ProbeResult{Bus: l.Bus}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d, err := pn532.New(ictx, l.Transport, nil)
	if err != nil {
		return res, err
	}
	res.Firmware = d.Firmware().String()
	if rc.Baud != 0 && rc.Baud != pn532.DefaultBaud && rec == nil {
		if err := d.SetBaud(ictx, rc.Baud); err != nil {
			return res, err
		}
	}
	res.Baud = d.Baud()
	res.Target, err = probePoll(ictx, d)
	if herr := d.Halt(); err == nil {
		err = herr
	}
	if rec != nil && l.Recording != nil {
		r := l.Recording("kazashictl probe on " + l.Bus + ", " + res.Firmware)
		if werr := pn532.WriteRecording(rec, r); err == nil {
			err = werr
		}
	}
	return res, err
}

func probePoll(ctx context.Context, d *pn532.Dev) (string, error) {
	tb, err := d.ListTypeB(ctx)
	switch {
	case err == nil:
		return fmt.Sprintf("type B, PUPI %s, FSC %d, FWT %v, ISO/IEC 14443-4 %v",
			maskID(tb.PUPI[:]), tb.MaxFrameSize(), tb.FWT().Round(time.Millisecond), tb.ISO14443_4()), nil
	case !errors.Is(err, pn532.ErrNoTarget):
		return "", err
	}
	ta, err := d.ListTypeA(ctx)
	switch {
	case err == nil:
		return fmt.Sprintf("type A, UID %s, SAK %02X, FSC %d, ISO/IEC 14443-4 %v",
			maskID(ta.UID), ta.SAK, ta.ATS.FSC, ta.ISO14443_4()), nil
	case errors.Is(err, pn532.ErrNoTarget):
		return "", nil
	}
	return "", err
}

// maskID shows the first byte and the length of a UID or PUPI: enough to
// tell a random ID (08…) from a fixed one, not enough to track a card.
func maskID(b []byte) string {
	if len(b) == 0 {
		return "none"
	}
	return fmt.Sprintf("%02X… (%d bytes)", b[0], len(b))
}

func probeCmd(ctx context.Context, args []string, out IO) error {
	fs := newFlags("probe", out)
	reader := fs.String("reader", "", "daemon configuration file with the \"reader\" object")
	record := fs.String("record", "", "write the bus transactions to this file (playback test form)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *reader == "" || fs.NArg() != 0 {
		fs.Usage()
		return errors.New("--reader CONFIG is required")
	}
	if out.OpenReader == nil {
		return errors.New("this build cannot open readers")
	}
	b, err := os.ReadFile(*reader)
	if err != nil {
		return err
	}
	var rec *os.File
	if *record != "" {
		if rec, err = os.Create(*record); err != nil {
			return err
		}
	}
	var w io.Writer
	if rec != nil {
		w = rec
	}
	res, err := Probe(ctx, out.OpenReader, b, w)
	if rec != nil {
		if cerr := rec.Close(); err == nil {
			err = cerr
		}
	}
	if res != nil {
		fmt.Fprintf(out.Stdout, "bus:      %s\n", res.Bus)
		if res.Firmware != "" {
			fmt.Fprintf(out.Stdout, "firmware: %s\n", res.Firmware)
		}
		if res.Baud != 0 {
			fmt.Fprintf(out.Stdout, "speed:    %d baud\n", res.Baud)
		}
		if err == nil {
			t := res.Target
			if t == "" {
				t = "no card or phone on the reader"
			}
			fmt.Fprintf(out.Stdout, "poll:     %s\n", t)
		}
	}
	if err == nil && *record != "" {
		fmt.Fprintf(out.Stdout, "recorded: %s\n", *record)
	}
	return err
}
