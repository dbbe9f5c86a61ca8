package sim

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
)

// Options configures Start.
type Options struct {
	// Link, when set, is a symlink made to the pty slave (e.g.
	// /tmp/kazashi-pn532) and removed by Close. An existing symlink there
	// is replaced; any other file is an error.
	Link string
	// Card, when non-nil, is placed on the field at start.
	Card Target
	// RemoveAfterAPDUs makes Card leave the field after answering that
	// many APDUs (0: never).
	RemoveAfterAPDUs int
	// Awake starts the chip in normal mode instead of LowVbat.
	Awake  bool
	Timing Timing
	// Logger receives the simulator's log; frames are logged at Debug
	// level with secrets and personal data masked (see the package
	// documentation). nil: quiet.
	Logger *slog.Logger
}

// Sim is a running simulated PN532 on a pseudo-terminal.
type Sim struct {
	chip  *Chip
	field *Field
	log   *slog.Logger

	master, slave *os.File
	path, link    string

	cancel    context.CancelFunc
	done      chan struct{}
	serveErr  error
	closeOnce sync.Once
	closeErr  error
}

// Start opens a pty and serves a simulated PN532 on it until ctx is done or
// Close is called. The simulator keeps the slave side open for its whole
// life, so hosts may open, close and reopen Path (or Link) freely.
func Start(ctx context.Context, opts Options) (*Sim, error) {
	log := opts.Logger
	if log == nil {
		log = discard
	}
	master, slave, err := openPTY()
	if err != nil {
		return nil, err
	}
	s := &Sim{
		field:  NewField(),
		log:    log,
		master: master,
		slave:  slave,
		path:   slave.Name(),
		done:   make(chan struct{}),
	}
	s.chip = NewChip(s.field, &ChipOptions{Awake: opts.Awake, Timing: opts.Timing, Logger: log})
	if opts.Link != "" {
		if err := replaceSymlink(s.path, opts.Link); err != nil {
			master.Close()
			slave.Close()
			return nil, err
		}
		s.link = opts.Link
	}
	if opts.Card != nil {
		s.field.Place(opts.Card, opts.RemoveAfterAPDUs)
	}
	ctx, s.cancel = context.WithCancel(ctx)
	go func() {
		defer close(s.done)
		s.serveErr = s.chip.Serve(ctx, master)
		if s.serveErr != nil {
			log.Error("serve", "err", s.serveErr)
		}
	}()
	go func() {
		<-ctx.Done()
		// Unblock the reader: Serve returns once ctx is done and its
		// Read fails.
		master.Close()
	}()
	return s, nil
}

// replaceSymlink makes link point to target, replacing an older symlink.
func replaceSymlink(target, link string) error {
	if fi, err := os.Lstat(link); err == nil {
		if fi.Mode()&fs.ModeSymlink == 0 {
			return fmt.Errorf("sim: link %s exists and is not a symlink", link)
		}
		if err := os.Remove(link); err != nil {
			return fmt.Errorf("sim: replace link: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sim: link: %w", err)
	}
	if err := os.Symlink(target, link); err != nil {
		return fmt.Errorf("sim: link: %w", err)
	}
	return nil
}

// Path returns the pty slave path (e.g. /dev/pts/3) a host opens.
func (s *Sim) Path() string { return s.path }

// Link returns the symlink made to Path, or "".
func (s *Sim) Link() string { return s.link }

// Chip returns the simulated chip.
func (s *Sim) Chip() *Chip { return s.chip }

// Field returns the RF field.
func (s *Sim) Field() *Field { return s.field }

// Place puts card on the field, replacing any card there.
func (s *Sim) Place(card Target) { s.field.Place(card, 0) }

// Remove takes the card off the field.
func (s *Sim) Remove() { s.field.Remove() }

// Done is closed when the simulator has stopped.
func (s *Sim) Done() <-chan struct{} { return s.done }

// Close stops the simulator, closes the pty and removes the link.
func (s *Sim) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		<-s.done
		var errs []error
		if err := s.slave.Close(); err != nil {
			errs = append(errs, fmt.Errorf("sim: close pty: %w", err))
		}
		if s.link != "" {
			if dest, err := os.Readlink(s.link); err == nil && dest == s.path {
				if err := os.Remove(s.link); err != nil {
					errs = append(errs, fmt.Errorf("sim: remove link: %w", err))
				}
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
