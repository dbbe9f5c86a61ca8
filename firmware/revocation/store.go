// Package revocation is the kiosk's revocation store: CRLs imported once,
// checked in full (RFC 5280 §5 and §6.3 CRL processing), kept as exact
// on-disk indexes (firmware/crlindex) that the daemon maps at start without
// parsing anything, and swapped while taps run.
//
// # Series
//
// Indexes are kept per series: one CRL issuer name, one signing key and one
// issuingDistributionPoint scope (JPKI partitions its CRLs by directory-name
// distribution points, and its root generations share one subject name, so
// the key is part of the series). Each series holds one complete state: the
// newest complete CRL, with the newest delta CRL merged into it (RFC 5280
// §5.2.4). The file of a series is <series>.kzi in the store directory.
//
// # Import
//
// Import reads a DER CRL in one pass (firmware/crl), streaming its entries
// into a new index while the signed part is hashed, then checks, in this
// order: the signature under one of the given signer certificates (issuer
// name, cRLSign, key); no unknown critical CRL or entry extension (RFC 5280
// §5.2, §5.3); a nextUpdate (freshness must be judgeable); a cRLNumber
// (replay must be refusable); certificateIssuer entries only in an indirect
// CRL (§5.3.3); removeFromCRL only in a delta CRL (§5.3.1); for a delta
// CRL, a complete state of the same series whose number is at least the
// delta's BaseCRLNumber (§5.2.4). The number must then be higher than any
// the series has seen, persisted across restarts in state.json; the same
// number with the same content is a no-op, with other content a replay.
// Only then is the new index renamed into place (temp file, fsync, rename,
// directory fsync) and swapped in; a failed import leaves the previous
// state serving.
//
// Time is not judged here: freshness is the verifier's, at each Verify,
// against the trusted clock.
package revocation

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kazashi/kazashi/firmware/crl"
	"github.com/kazashi/kazashi/firmware/crlindex"
	"github.com/kazashi/kazashi/firmware/verify"
)

// Errors of Import; branch with errors.Is. Every error names the input and
// what failed, never an entry's serial number.
var (
	ErrUntrusted   = errors.New("revocation: CRL not signed by a given issuer")
	ErrUnsupported = errors.New("revocation: CRL uses a feature that makes it unusable")
	ErrMalformed   = errors.New("revocation: malformed CRL")
	ErrReplay      = errors.New("revocation: CRL number not newer than the one already seen")
	ErrNoBase      = errors.New("revocation: delta CRL without a usable base CRL")
	ErrClosed      = errors.New("revocation: store closed")
)

// maxTables bounds the certificate issuers of one indirect CRL.
const maxTables = 64

// indexExt is the file extension of series indexes.
const indexExt = ".kzi"

// Options configure a Store.
type Options struct {
	// Logger receives import and reload messages. Optional.
	Logger *slog.Logger
	// MemoryLimit bounds the index writer's sort memory (bytes); 0 uses
	// the crlindex default.
	MemoryLimit int
	// Now stamps imports (ImportedAt). Optional; time.Now by default.
	Now func() time.Time
}

// Store is a directory of series indexes. Safe for concurrent use; several
// processes may import into one directory (an flock serialises them) and
// Reload picks up what another process wrote.
type Store struct {
	dir  string
	opts Options
	log  *slog.Logger

	imp sync.Mutex // serialises Import and Reload in this process

	// mu guards cur: a Verify holds it for reading through its Snapshot,
	// a swap takes it for writing, so no reader ever sees a closed index.
	mu     sync.RWMutex
	cur    *snapshot
	closed bool

	errMu   sync.Mutex
	lastErr map[string]string // file or series → last failure, for Status
}

// Open opens the store in dir, creating it if needed, and maps every
// series index. A corrupt index is skipped (its series then has no CRL,
// and verification fails closed) and reported in Status and the log.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("revocation: %w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Store{dir: dir, opts: opts, log: opts.Logger, lastErr: map[string]string{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.cur = &snapshot{}
	if err := s.Reload(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Close unmaps every index. Snapshots must have been released.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for _, l := range s.cur.all {
		l.idx.Close()
	}
	s.cur = &snapshot{}
	return nil
}

// Snapshot returns the current consistent view (crl.Source). Release it
// promptly: a swap waits for it.
func (s *Store) Snapshot() crl.Snapshot {
	s.mu.RLock()
	return &heldSnapshot{snapshot: s.cur, release: s.mu.RUnlock}
}

type heldSnapshot struct {
	*snapshot
	once    sync.Once
	release func()
}

func (h *heldSnapshot) Release() { h.once.Do(h.release) }

// snapshot is an immutable set of opened series.
type snapshot struct {
	all      []*list
	byIssuer map[string][]crl.Usable
}

func newSnapshot(lists []*list) *snapshot {
	sort.Slice(lists, func(i, j int) bool { return lists[i].meta.Series < lists[j].meta.Series })
	sn := &snapshot{all: lists, byIssuer: map[string][]crl.Usable{}}
	for _, l := range lists {
		k := string(l.info.RawIssuer)
		sn.byIssuer[k] = append(sn.byIssuer[k], l)
	}
	return sn
}

func (s *snapshot) ByIssuer(name []byte) []crl.Usable { return s.byIssuer[string(name)] }

func (s *snapshot) series(id string) *list {
	for _, l := range s.all {
		if l.meta.Series == id {
			return l
		}
	}
	return nil
}

// Meta is the metadata stored in each index file, as JSON.
type Meta struct {
	Format int    `json:"format"`
	Series string `json:"series"`
	// Info describes the complete state: for a merged delta, Number,
	// ThisUpdate and NextUpdate are the delta's, BaseNumber is nil.
	Info crl.Info `json:"info"`
	// Signer is the DER certificate whose key verified the CRL(s).
	Signer []byte `json:"signer"`
	// Tables lists each index table's certificate issuer (DER Name).
	Tables [][]byte `json:"tables"`
	// Complete is the complete CRL the state is built on.
	Complete Source `json:"complete"`
	// Delta is the delta CRL merged in, if any.
	Delta *Source `json:"delta,omitempty"`
	// ImportedAt is when this state was written (the importer's clock).
	ImportedAt time.Time `json:"imported_at"`
}

// Source identifies one imported CRL.
type Source struct {
	Number     *big.Int  `json:"number"`
	ThisUpdate time.Time `json:"this_update"`
	NextUpdate time.Time `json:"next_update"`
	SHA256     string    `json:"sha256"`
	Entries    int64     `json:"entries"`
}

const metaFormat = 1

// list is one opened series index; it implements crl.Usable.
type list struct {
	meta   Meta
	info   crl.Info
	signer *x509.Certificate
	idx    *crlindex.Index
	file   string
	fi     os.FileInfo      // of the mapped file, to notice a replacement
	tables map[string][]int // certificate issuer DER → tables
}

func (l *list) Info() *crl.Info           { return &l.info }
func (l *list) Signer() *x509.Certificate { return l.signer }

// Entries counts the listed certificates of every table.
func (l *list) Entries() (n int64) {
	for t := range l.meta.Tables {
		n += int64(l.idx.Len(t))
	}
	return n
}

// Lookup implements crl.Usable. certIssuer selects the table: the CRL
// issuer's own entries, or for an indirect CRL those of certIssuer.
//
// The index is a mapped file: if it is truncated or unreadable under the
// mapping (an operator's mistake, a failing card), the access faults; that
// is an error here (crlindex.Find), so the verifier fails closed
// (crl-unavailable) instead of the daemon crashing.
func (l *list) Lookup(ctx context.Context, certIssuer []byte, serial *big.Int) (crl.Revocation, bool, error) {
	if err := ctx.Err(); err != nil {
		return crl.Revocation{}, false, err
	}
	mag := serial.Bytes()
	neg := serial.Sign() < 0
	for _, t := range l.tables[string(certIssuer)] {
		e, ok, err := l.idx.Find(t, mag, neg)
		if err != nil {
			return crl.Revocation{}, false, fmt.Errorf("revocation: index %s: %w", filepath.Base(l.file), err)
		}
		if ok {
			return crl.Revocation{Reason: e.Reason, RevokedAt: e.RevokedAt}, true, nil
		}
	}
	return crl.Revocation{}, false, nil
}

func openList(path string) (*list, error) {
	var idx *crlindex.Index
	var fi os.FileInfo
	for try := 0; ; try++ {
		before, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		if idx, err = crlindex.Open(path); err != nil {
			return nil, err
		}
		after, err := os.Stat(path)
		if err == nil && os.SameFile(before, after) {
			fi = after
			break
		}
		idx.Close()
		if try == 2 {
			return nil, fmt.Errorf("%s: replaced while being opened", path)
		}
	}
	l := &list{idx: idx, file: path, fi: fi, tables: map[string][]int{}}
	if err := json.Unmarshal(idx.Metadata(), &l.meta); err != nil {
		idx.Close()
		return nil, fmt.Errorf("%s: metadata: %w", path, err)
	}
	if l.meta.Format != metaFormat {
		idx.Close()
		return nil, fmt.Errorf("%s: metadata format %d, want %d", path, l.meta.Format, metaFormat)
	}
	if len(l.meta.Tables) > idx.Tables() {
		idx.Close()
		return nil, fmt.Errorf("%s: metadata names %d tables, index has %d", path, len(l.meta.Tables), idx.Tables())
	}
	var err error
	// verify.ParseCertificate also takes distribution points named
	// relative to the CRL issuer, which crypto/x509 refuses.
	if l.signer, err = verify.ParseCertificate(l.meta.Signer); err != nil {
		idx.Close()
		return nil, fmt.Errorf("%s: signer certificate: %w", path, err)
	}
	l.info = l.meta.Info
	for i, t := range l.meta.Tables {
		l.tables[string(t)] = append(l.tables[string(t)], i)
	}
	return l, nil
}

// Reload maps the indexes present in the directory now, keeping the opened
// ones that did not change, and swaps them in. Another process's import
// (kazashictl crl import into the daemon's directory) becomes visible.
func (s *Store) Reload(ctx context.Context) error {
	s.imp.Lock()
	defer s.imp.Unlock()
	names, err := filepath.Glob(filepath.Join(s.dir, "*"+indexExt))
	if err != nil {
		return fmt.Errorf("revocation: %w", err)
	}
	s.mu.RLock()
	cur := s.cur
	s.mu.RUnlock()
	var lists []*list
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if old := cur.byFile(name); old != nil && old.sameFile() {
			lists = append(lists, old)
			continue
		}
		l, err := openList(name)
		if err != nil {
			s.fail(filepath.Base(name), err)
			s.log.Error("revocation index unusable: its series has no CRL until a new import", "file", filepath.Base(name), "err", err)
			continue
		}
		s.clearFail(filepath.Base(name))
		lists = append(lists, l)
	}
	s.swap(newSnapshot(lists))
	return nil
}

func (s *snapshot) byFile(path string) *list {
	for _, l := range s.all {
		if l.file == path {
			return l
		}
	}
	return nil
}

// sameFile reports whether the mapped index is still the file at its path
// (an atomic rename replaces the inode).
func (l *list) sameFile() bool {
	st, err := os.Stat(l.file)
	if err != nil {
		return false
	}
	return os.SameFile(st, l.fi)
}

// swap installs next and closes the indexes the old snapshot held that
// next does not.
func (s *Store) swap(next *snapshot) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		for _, l := range next.all {
			l.idx.Close()
		}
		return
	}
	old := s.cur
	s.cur = next
	s.mu.Unlock()
	for _, l := range old.all {
		if !slices.Contains(next.all, l) {
			l.idx.Close()
		}
	}
}

func (s *Store) fail(key string, err error) {
	s.errMu.Lock()
	s.lastErr[key] = err.Error()
	s.errMu.Unlock()
}

func (s *Store) clearFail(key string) {
	s.errMu.Lock()
	delete(s.lastErr, key)
	s.errMu.Unlock()
}

// Status describes the store for the daemon's status and kazashictl.
type Status struct {
	Series []SeriesStatus `json:"series"`
	// Errors are the last failures by input (file or series), cleared by
	// a later success.
	Errors map[string]string `json:"errors,omitempty"`
}

// SeriesStatus is one series' current state.
type SeriesStatus struct {
	Series     string    `json:"series"`
	Issuer     string    `json:"issuer"` // the CA's name, not personal data
	Scope      string    `json:"scope,omitempty"`
	Number     *big.Int  `json:"number"`
	Complete   *big.Int  `json:"complete_number"`
	Delta      *big.Int  `json:"delta_number,omitempty"`
	ThisUpdate time.Time `json:"this_update"`
	NextUpdate time.Time `json:"next_update"`
	Entries    int64     `json:"entries"`
	File       string    `json:"file"`
}

// Status returns the current series and the last failures.
func (s *Store) Status() Status {
	sn := s.Snapshot()
	defer sn.Release()
	var st Status
	for _, l := range sn.(*heldSnapshot).all {
		ss := SeriesStatus{
			Series: l.meta.Series, Issuer: NameString(l.info.RawIssuer),
			Number: l.info.Number, Complete: l.meta.Complete.Number,
			ThisUpdate: l.info.ThisUpdate, NextUpdate: l.info.NextUpdate,
			Entries: l.Entries(), File: filepath.Base(l.file),
		}
		if l.info.IDP != nil {
			ss.Scope = hex.EncodeToString(sha256Sum(l.info.IDP.Raw)[:6])
		}
		if l.meta.Delta != nil {
			ss.Delta = l.meta.Delta.Number
		}
		st.Series = append(st.Series, ss)
	}
	s.errMu.Lock()
	if len(s.lastErr) > 0 {
		st.Errors = make(map[string]string, len(s.lastErr))
		for k, v := range s.lastErr {
			st.Errors[k] = v
		}
	}
	s.errMu.Unlock()
	return st
}

// Newest returns the latest thisUpdate of the loaded series (zero if none):
// a verified CRL proves that its thisUpdate has passed.
func (s *Store) Newest() time.Time {
	sn := s.Snapshot()
	defer sn.Release()
	var t time.Time
	for _, l := range sn.(*heldSnapshot).all {
		if l.info.ThisUpdate.After(t) {
			t = l.info.ThisUpdate
		}
	}
	return t
}

// NameString renders a CA's DER name for operators (CA names are not
// personal data; never pass a certificate holder's subject).
func NameString(der []byte) string {
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(der, &rdns); err != nil || len(rest) > 0 {
		return "(unparsable name)"
	}
	var n pkix.Name
	n.FillFromRDNSequence(&rdns)
	return n.String()
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// seriesID names the series of a CRL issuer, signing key and scope.
func seriesID(issuer []byte, signer *x509.Certificate, idp *crl.IDP) string {
	h := sha256.New()
	h.Write(issuer)
	h.Write([]byte{0})
	h.Write(signer.RawSubjectPublicKeyInfo)
	h.Write([]byte{0})
	if idp != nil {
		h.Write(idp.Raw)
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// Result describes one import.
type Result struct {
	Series string
	// Unchanged: the CRL was already the series' current one.
	Unchanged bool
	Delta     bool
	Info      crl.Info
	Signer    *x509.Certificate
	SHA256    string
	Bytes     int64
	Entries   int64 // entries of the resulting complete state
	File      string
}

// ImportFile imports the CRL in path; see Import.
func (s *Store) ImportFile(ctx context.Context, path string, signers []*x509.Certificate, progress func(read int64)) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("revocation: %w", err)
	}
	defer f.Close()
	r, err := s.Import(ctx, f, signers, progress)
	if err != nil {
		s.fail(path, err)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.clearFail(path)
	return r, nil
}

// Import reads one DER CRL from r, checks it (see the package
// documentation) and, if it passes, makes it its series' current state. It
// is the API the fleet update path calls. progress, if set, is called with
// the bytes read so far every few MB. A failure changes nothing.
func (s *Store) Import(ctx context.Context, r io.Reader, signers []*x509.Certificate, progress func(read int64)) (*Result, error) {
	s.imp.Lock()
	defer s.imp.Unlock()
	unlock, err := lockDir(s.dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Under the lock no other importer writes here: temporary files left
	// by one that crashed can go.
	if n, err := crlindex.RemoveTemps(s.dir); err != nil {
		s.log.Warn("temporary index files not removed", "err", err)
	} else if n > 0 {
		s.log.Info("removed temporary index files of an interrupted import", "files", n)
	}
	if stale, _ := filepath.Glob(filepath.Join(s.dir, ".delta-*"+indexExt)); len(stale) > 0 {
		for _, f := range stale {
			os.Remove(f)
		}
	}

	w, err := crlindex.Create(s.dir, crlindex.WriterOptions{MemoryLimit: s.opts.MemoryLimit, Tables: maxTables})
	if err != nil {
		return nil, fmt.Errorf("revocation: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			w.Abort()
		}
	}()

	// Tables: 0 is the CRL issuer; an indirect CRL's certificateIssuer
	// values get their own, in order of appearance.
	tables := [][]byte{nil}
	tableOf := map[string]uint16{}
	var sawRemove bool
	// The parser and the index writer run on their own goroutines (a
	// kiosk board has 2–4 cores), handing entries over in batches.
	feed := newFeeder(w)
	var ie crlindex.Entry
	pr := &progressReader{r: r, fn: progress}
	p, err := crl.Parse(ctx, pr, func(e *crl.Entry) error {
		ie.Table = 0
		if e.CertificateIssuer != nil {
			t, ok := tableOf[string(e.CertificateIssuer)]
			if !ok {
				if len(tables) == maxTables {
					return fmt.Errorf("%w: more than %d certificate issuers", ErrUnsupported, maxTables-1)
				}
				t = uint16(len(tables))
				tables = append(tables, bytes.Clone(e.CertificateIssuer))
				tableOf[string(e.CertificateIssuer)] = t
			}
			ie.Table = t
		} else if e.NonDirectoryIssuer {
			return nil // names no certificate issuer that could match
		}
		if e.Reason == crl.ReasonRemoveFromCRL {
			sawRemove = true
		}
		ie.Serial, ie.Negative, ie.Reason, ie.RevokedAt = e.Serial, e.Negative, e.Reason, e.RevokedAt
		return feed.add(&ie)
	})
	if ferr := feed.close(); err == nil {
		err = ferr
	}
	if err != nil {
		switch {
		case errors.Is(err, ErrUnsupported):
		case errors.Is(err, crl.ErrUnsupported):
			err = fmt.Errorf("%w: %w", ErrUnsupported, err)
		case errors.Is(err, crl.ErrMalformed):
			err = fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		return nil, err
	}
	tables[0] = p.RawIssuer

	signer, err := pickSigner(p, signers)
	if err != nil {
		return nil, err
	}
	if err := usable(p, sawRemove); err != nil {
		return nil, err
	}
	id := seriesID(p.RawIssuer, signer, p.IDP)
	res := &Result{Series: id, Delta: p.BaseNumber != nil, Info: p.Info, Signer: signer,
		SHA256: hex.EncodeToString(p.SHA256[:]), Bytes: p.Size, File: filepath.Join(s.dir, id+indexExt)}

	st, err := loadState(s.dir)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	cur := s.cur.series(id)
	s.mu.RUnlock()
	if cur != nil && !cur.sameFile() {
		cur = nil // another process replaced it: reopen below
	}
	if cur == nil {
		if l, err := openList(res.File); err == nil {
			defer l.idx.Close() // only for the merge; Reload maps its own
			cur = l
		}
	}
	seen := st.Series[id]
	if cur != nil && (seen == nil || seen.Highest.Cmp(cur.info.Number) < 0) {
		seen = &seriesState{Highest: cur.info.Number, SHA256: currentSHA(cur)}
	}
	if seen != nil {
		switch c := p.Number.Cmp(seen.Highest); {
		case c == 0 && seen.SHA256 == res.SHA256:
			res.Unchanged = true
			if cur != nil {
				res.Entries = cur.Entries()
			}
			return res, nil
		case c <= 0:
			return nil, fmt.Errorf("%w: series %s: cRLNumber %s, already seen %s", ErrReplay, id, p.Number, seen.Highest)
		}
	}

	meta := Meta{Format: metaFormat, Series: id, Signer: signer.Raw, ImportedAt: s.opts.Now().UTC()}
	src := Source{Number: p.Number, ThisUpdate: p.ThisUpdate, NextUpdate: p.NextUpdate, SHA256: res.SHA256, Entries: p.Entries}
	if p.BaseNumber == nil {
		meta.Info, meta.Tables, meta.Complete = p.Info, tables, src
		if err := w.Commit(ctx, res.File, mustJSON(meta)); err != nil {
			return nil, fmt.Errorf("revocation: %w", err)
		}
		committed = true
	} else {
		if cur == nil {
			return nil, fmt.Errorf("%w: series %s has no complete CRL (delta's base is #%s)", ErrNoBase, id, p.BaseNumber)
		}
		if cur.meta.Complete.Number.Cmp(p.BaseNumber) < 0 {
			return nil, fmt.Errorf("%w: series %s holds complete CRL #%s, the delta needs #%s or later", ErrNoBase, id, cur.meta.Complete.Number, p.BaseNumber)
		}
		// The delta's entries go to a temporary index of their own; the
		// merged state is the base without every entry the delta names,
		// plus the delta's entries other than removeFromCRL.
		tmp := filepath.Join(s.dir, ".delta-"+id+indexExt)
		if err := w.Commit(ctx, tmp, mustJSON(Meta{Format: metaFormat, Tables: tables})); err != nil {
			return nil, fmt.Errorf("revocation: %w", err)
		}
		committed = true
		defer os.Remove(tmp)
		n, err := s.merge(ctx, cur, tmp, tables, res.File, func(tables [][]byte, entries int64) []byte {
			info := cur.info
			info.Number, info.ThisUpdate, info.NextUpdate = p.Number, p.ThisUpdate, p.NextUpdate
			info.BaseNumber, info.Entries = nil, entries
			info.AuthorityKeyID = p.AuthorityKeyID
			meta.Info, meta.Tables, meta.Complete, meta.Delta = info, tables, cur.meta.Complete, &src
			return mustJSON(meta)
		})
		if err != nil {
			return nil, err
		}
		res.Entries = n
	}

	st.raise(id, p.Number, res.SHA256)
	if err := st.save(s.dir); err != nil {
		// The index is in place; the next Open raises the state from it.
		s.log.Error("revocation state not saved; it is rebuilt from the index at next start", "err", err)
	}
	l, err := openList(res.File)
	if err != nil {
		return nil, fmt.Errorf("revocation: reopening the new index: %w", err)
	}
	if res.Entries == 0 {
		res.Entries = l.Entries()
	}
	s.mu.RLock()
	lists := slices.DeleteFunc(slices.Clone(s.cur.all), func(o *list) bool { return o.meta.Series == id })
	s.mu.RUnlock()
	s.swap(newSnapshot(append(lists, l)))
	s.clearFail(id)
	s.log.Info("CRL imported", "series", id, "number", p.Number.String(), "delta", res.Delta,
		"this_update", p.ThisUpdate, "next_update", p.NextUpdate, "entries", res.Entries)
	return res, nil
}

func currentSHA(l *list) string {
	if l.meta.Delta != nil {
		return l.meta.Delta.SHA256
	}
	return l.meta.Complete.SHA256
}

// merge writes base ∖ delta ∪ (delta − removeFromCRL) to final and returns
// its entry count.
func (s *Store) merge(ctx context.Context, base *list, deltaPath string, deltaTables [][]byte, final string, meta func([][]byte, int64) []byte) (int64, error) {
	d, err := crlindex.Open(deltaPath)
	if err != nil {
		return 0, fmt.Errorf("revocation: delta index: %w", err)
	}
	defer d.Close()
	// Union of the certificate issuers, base tables first.
	tables := slices.Clone(base.meta.Tables)
	tableOf := map[string]uint16{}
	for i, t := range tables {
		if _, ok := tableOf[string(t)]; !ok {
			tableOf[string(t)] = uint16(i)
		}
	}
	dmap := make([]uint16, len(deltaTables))
	for i, t := range deltaTables {
		j, ok := tableOf[string(t)]
		if !ok {
			if len(tables) == maxTables {
				return 0, fmt.Errorf("%w: more than %d certificate issuers", ErrUnsupported, maxTables-1)
			}
			j = uint16(len(tables))
			tables = append(tables, t)
			tableOf[string(t)] = j
		}
		dmap[i] = j
	}
	// deltaTablesOf maps a merged table to the delta tables with its issuer.
	deltaTablesOf := func(t uint16) []int {
		var out []int
		for i, j := range dmap {
			if j == t {
				out = append(out, i)
			}
		}
		return out
	}
	w, err := crlindex.Create(s.dir, crlindex.WriterOptions{MemoryLimit: s.opts.MemoryLimit, Tables: maxTables})
	if err != nil {
		return 0, fmt.Errorf("revocation: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			w.Abort()
		}
	}()
	// A merge-join per table, in table order, keeps the writer's input
	// sorted (its fast path: no sort, no spill): the delta's entries, few
	// and held in memory, override or remove the base's.
	var n int64
	for t := range tables {
		var ds []crlindex.Entry
		dts := deltaTablesOf(uint16(t))
		for _, dt := range dts {
			err := d.Iterate(dt, func(e *crlindex.Entry) error {
				c := *e
				c.Serial = bytes.Clone(e.Serial)
				ds = append(ds, c)
				return nil
			})
			if err != nil {
				return 0, fmt.Errorf("revocation: merge: %w", err)
			}
		}
		if len(dts) > 1 {
			slices.SortStableFunc(ds, func(a, b crlindex.Entry) int { return crlindex.Compare(&a, &b) })
		}
		j := 0
		emit := func(e *crlindex.Entry) error {
			if e.Reason == crl.ReasonRemoveFromCRL {
				return nil
			}
			e.Table = uint16(t)
			n++
			return w.Add(e)
		}
		if t < len(base.meta.Tables) {
			err := base.idx.Iterate(t, func(e *crlindex.Entry) error {
				for j < len(ds) && crlindex.Compare(&ds[j], e) < 0 {
					if err := emit(&ds[j]); err != nil {
						return err
					}
					j++
				}
				if j < len(ds) && crlindex.Compare(&ds[j], e) == 0 {
					j++
					return emit(&ds[j-1]) // the delta's word replaces the base's
				}
				e.Table = uint16(t)
				n++
				return w.Add(e)
			})
			if err != nil {
				return 0, fmt.Errorf("revocation: merge: %w", err)
			}
		}
		for ; j < len(ds); j++ {
			if err := emit(&ds[j]); err != nil {
				return 0, fmt.Errorf("revocation: merge: %w", err)
			}
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
	if err := w.Commit(ctx, final, meta(tables, n)); err != nil {
		return 0, fmt.Errorf("revocation: %w", err)
	}
	ok = true
	return n, nil
}

// pickSigner returns the first signer under which p's signature verifies
// (issuer name, cRLSign, key: crl.Parsed.CheckSignatureFrom).
func pickSigner(p *crl.Parsed, signers []*x509.Certificate) (*x509.Certificate, error) {
	var errs []error
	for _, c := range signers {
		if c == nil || !bytes.Equal(c.RawSubject, p.RawIssuer) {
			continue
		}
		err := p.CheckSignatureFrom(c)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("%w: no given issuer certificate has the CRL issuer's name %q", ErrUntrusted, NameString(p.RawIssuer))
	}
	return nil, fmt.Errorf("%w: %d issuer certificate(s) with the CRL issuer's name, none verifies: %w", ErrUntrusted, len(errs), errors.Join(errs...))
}

// usable applies the checks that make a verified CRL usable at all.
func usable(p *crl.Parsed, sawRemove bool) error {
	switch {
	case len(p.UnknownCritical) > 0:
		return fmt.Errorf("%w: critical CRL extension %v not understood (RFC 5280 §5.2)", ErrUnsupported, p.UnknownCritical[0])
	case p.EntryUnknownCritical > 0:
		return fmt.Errorf("%w: %d entries carry a critical entry extension not understood (RFC 5280 §5.3)", ErrUnsupported, p.EntryUnknownCritical)
	case p.NextUpdate.IsZero():
		return fmt.Errorf("%w: no nextUpdate: freshness cannot be judged", ErrUnsupported)
	case p.NextUpdate.Before(p.ThisUpdate):
		return fmt.Errorf("%w: nextUpdate precedes thisUpdate", ErrMalformed)
	case p.Number == nil:
		return fmt.Errorf("%w: no cRLNumber: a replayed older CRL could not be refused", ErrUnsupported)
	case p.HasCertificateIssuer && (p.IDP == nil || !p.IDP.Indirect):
		return fmt.Errorf("%w: certificateIssuer entries in a CRL that is not indirect (RFC 5280 §5.3.3)", ErrMalformed)
	case sawRemove && p.BaseNumber == nil:
		return fmt.Errorf("%w: removeFromCRL entries in a complete CRL (RFC 5280 §5.3.1)", ErrMalformed)
	case p.BaseNumber != nil && p.Number.Cmp(p.BaseNumber) <= 0:
		return fmt.Errorf("%w: delta CRL #%s is not newer than its base #%s", ErrMalformed, p.Number, p.BaseNumber)
	}
	return nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain types
	}
	return b
}

// progressReader reports bytes read every 4 MiB.
type progressReader struct {
	r    io.Reader
	fn   func(int64)
	n    int64
	last int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.fn != nil && (p.n-p.last >= 4<<20 || err == io.EOF) {
		p.last = p.n
		p.fn(p.n)
	}
	return n, err
}

// lockDir takes an exclusive flock on the store's lock file, so that two
// processes never import into one directory at once.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("revocation: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("revocation: lock: %w", err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// DropCaches drops every mapped index from memory and from the page cache,
// so that the next lookups read from the storage device: a benchmark aid
// for cold-lookup latency. errors.ErrUnsupported where the OS has no way.
func (s *Store) DropCaches() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, l := range s.cur.all {
		if err := l.idx.DropCaches(l.file); err != nil {
			return err
		}
	}
	return nil
}

// feeder hands entries to an index writer on another goroutine, in
// batches; at most two batches are in flight, so memory stays bounded.
type feeder struct {
	w    *crlindex.Writer
	cur  *batch
	work chan *batch
	free chan *batch
	done chan error
	fail atomic.Pointer[error] // the writer's first error, seen by flush
}

type batch struct {
	ents []crlindex.Entry
	buf  []byte // the serials' bytes
}

const batchLen = 4096

func newFeeder(w *crlindex.Writer) *feeder {
	f := &feeder{w: w, work: make(chan *batch, 2), free: make(chan *batch, 3), done: make(chan error, 1)}
	for range 3 {
		f.free <- &batch{ents: make([]crlindex.Entry, 0, batchLen), buf: make([]byte, 0, batchLen*24)}
	}
	f.cur = <-f.free
	go func() {
		var err error
		for b := range f.work {
			for i := range b.ents {
				if err == nil {
					if err = w.Add(&b.ents[i]); err != nil {
						f.fail.Store(&err)
					}
				}
			}
			b.ents, b.buf = b.ents[:0], b.buf[:0]
			f.free <- b
		}
		f.done <- err
	}()
	return f
}

// add copies e into the current batch.
func (f *feeder) add(e *crlindex.Entry) error {
	b := f.cur
	if len(b.ents) == batchLen || len(b.buf)+len(e.Serial) > cap(b.buf) {
		if err := f.flush(); err != nil {
			return err
		}
		b = f.cur
	}
	c := *e
	start := len(b.buf)
	b.buf = append(b.buf, e.Serial...)
	c.Serial = b.buf[start:len(b.buf):len(b.buf)]
	b.ents = append(b.ents, c)
	return nil
}

func (f *feeder) flush() error {
	if err := f.fail.Load(); err != nil {
		return *err // close still waits for the writer
	}
	f.work <- f.cur
	f.cur = <-f.free
	return nil
}

// close hands over the last batch and waits for the writer.
func (f *feeder) close() error {
	if len(f.cur.ents) > 0 {
		f.work <- f.cur
	}
	close(f.work)
	return <-f.done
}
