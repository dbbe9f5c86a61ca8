package revocation

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/kazashi/kazashi/firmware/atomicfile"
)

// Watch keeps a Store current while the daemon runs: it imports configured
// CRL files when they change and reloads indexes that another process
// (kazashictl crl import) wrote into the store's directory. A failed
// import keeps the old state serving; the error is logged and kept for
// Status until a later import of that file succeeds.
type Watch struct {
	Store *Store
	// Files are CRL files (DER) to import when they change. A directory
	// stands for every *.crl file in it (an inbox).
	Files []string
	// Signers are the certificates allowed to sign the CRLs: the trust
	// anchors and any intermediate CAs.
	Signers []*x509.Certificate
	// Interval between polls; Run also syncs on every trigger (SIGHUP).
	Interval time.Duration
	// OnImport is called after each successful, changing import (the
	// daemon raises its trusted clock with the CRL's thisUpdate).
	OnImport func(ctx context.Context, r *Result)
	Logger   *slog.Logger

	mu sync.Mutex // one Sync at a time
}

// seenFile is the fingerprint of a file at its last import attempt, kept
// in the store directory so an unchanged file is not parsed again at the
// next start.
type seenFile struct {
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
	Inode   uint64 `json:"inode"`
	Err     string `json:"err,omitempty"`
}

const seenFileName = "imported.json"

// Sync imports every changed file once and reloads the directory. It
// returns the joined import errors.
func (w *Watch) Sync(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	log := w.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	seen := map[string]seenFile{}
	seenPath := filepath.Join(w.Store.Dir(), seenFileName)
	if b, err := os.ReadFile(seenPath); err == nil {
		if json.Unmarshal(b, &seen) != nil {
			seen = map[string]seenFile{} // only an optimisation: re-import
		}
	}
	files, err := w.expand()
	if err != nil {
		return err
	}
	var errs []error
	changed := false
	// A delta whose base comes later in the list is retried once after
	// the others.
	var retry []string
	for pass := 0; pass < 2; pass++ {
		if pass == 1 {
			files, retry = retry, nil
		}
		for _, f := range files {
			if err := ctx.Err(); err != nil {
				return err
			}
			fp, err := fingerprint(f)
			if err != nil {
				errs = append(errs, fmt.Errorf("revocation: %w", err))
				continue
			}
			if old, ok := seen[f]; ok && old.Size == fp.Size && old.ModTime == fp.ModTime && old.Inode == fp.Inode {
				if old.Err != "" {
					errs = append(errs, fmt.Errorf("%s (unchanged since it failed): %s", f, old.Err))
				}
				continue
			}
			start := time.Now()
			r, err := w.Store.ImportFile(ctx, f, w.Signers, nil)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if pass == 0 && errors.Is(err, ErrNoBase) {
					retry = append(retry, f)
					continue
				}
				fp.Err = err.Error()
				log.Error("CRL import failed; the previous revocation data stays in use", "file", f, "err", err)
				errs = append(errs, err)
			} else if !r.Unchanged {
				log.Info("CRL file imported", "file", f, "series", r.Series, "number", r.Info.Number.String(),
					"delta", r.Delta, "entries", r.Entries, "took", time.Since(start).Round(time.Millisecond))
				if w.OnImport != nil {
					w.OnImport(ctx, r)
				}
			}
			seen[f] = fp
			changed = true
		}
	}
	if changed {
		if b, err := json.Marshal(seen); err == nil {
			if err := atomicfile.Write(seenPath, b, 0o640); err != nil {
				log.Warn("import fingerprints not saved: unchanged files are parsed again at next start", "err", err)
			}
		}
	}
	if err := w.Store.Reload(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// expand lists the files, directories replaced by their *.crl files.
func (w *Watch) expand() ([]string, error) {
	var out []string
	for _, f := range w.Files {
		st, err := os.Stat(f)
		if err != nil {
			return nil, fmt.Errorf("revocation: %w", err)
		}
		if !st.IsDir() {
			out = append(out, f)
			continue
		}
		m, err := filepath.Glob(filepath.Join(f, "*.crl"))
		if err != nil {
			return nil, err
		}
		// Complete CRLs sort before deltas only by name; a delta whose
		// base is missing fails and is retried when its file changes or
		// at the next start, so name inbox files by number.
		sort.Strings(m)
		out = append(out, m...)
	}
	return out, nil
}

// Run syncs every Interval and on every trigger until ctx ends.
func (w *Watch) Run(ctx context.Context, trigger <-chan struct{}) error {
	iv := w.Interval
	if iv <= 0 {
		iv = time.Minute
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-trigger:
		}
		_ = w.Sync(ctx) // errors are logged and in Status
	}
}

func fingerprint(path string) (seenFile, error) {
	st, err := os.Stat(path)
	if err != nil {
		return seenFile{}, err
	}
	fp := seenFile{Size: st.Size(), ModTime: st.ModTime().UnixNano()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		fp.Inode = uint64(sys.Ino)
	}
	return fp, nil
}
