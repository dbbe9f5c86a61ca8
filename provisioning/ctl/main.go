package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kazashi/kazashi/provisioning/backend"
)

// IO is where Main writes.
type IO struct {
	Stdout, Stderr io.Writer
	// Terminal: stderr is a terminal (progress bars instead of lines).
	Terminal bool
	// OpenReader opens a PN532 bus for probe (set by the main package).
	OpenReader ReaderOpener

	// listening, if set, is called by listen once it has subscribed, with
	// the listener's counters (tests wait on them instead of on the clock).
	listening func(stats func() backend.Stats)
}

// Exit statuses of kazashictl.
const (
	ExitOK      = 0 // done; for verify cert: the certificate is valid
	ExitInvalid = 1 // verify cert: the certificate is not valid
	ExitError   = 2 // bad usage or unreadable input
)

const usage = `usage:
  kazashictl verify cert --trust FILE|DIR [--intermediate FILE]... [--crl FILE]... [--at RFC3339] CERT
  kazashictl crl import --issuer CA [--issuer CA]... --index DIR CRL...
  kazashictl crl inspect [--issuer CA]... CRL...
  kazashictl crl inspect --index DIR
  kazashictl crl diff [--serials] OLD.crl NEW.crl
  kazashictl listen --broker URL --db FILE [--group NAME] [--prefix PREFIX] [--client-id ID]
                    [--tls-ca FILE [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME]]
  kazashictl probe --reader CONFIG [--record FILE]
  kazashictl events --db FILE [--since 1h|RFC3339] [--outcome accepted|rejected|error]
                    [--reason CODE] [--device ID] [--limit N] [--json]
`

// Main runs one kazashictl command line and returns the exit status.
func Main(ctx context.Context, args []string, io IO) int {
	cmd, rest := command(args)
	var err error
	code := ExitOK
	switch cmd {
	case "verify cert":
		code, err = verifyCertCmd(ctx, rest, io)
	case "crl import":
		err = crlImportCmd(ctx, rest, io)
	case "crl inspect":
		err = crlInspectCmd(ctx, rest, io)
	case "crl diff":
		err = crlDiffCmd(ctx, rest, io)
	case "listen":
		err = listenCmd(ctx, rest, io)
	case "events":
		err = eventsCmd(ctx, rest, io)
	case "probe":
		err = probeCmd(ctx, rest, io)
	default:
		fmt.Fprint(io.Stderr, usage)
		return ExitError
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(io.Stderr, "kazashictl "+cmd+":", err)
		}
		return ExitError
	}
	return code
}

// command splits args into the command's name (one word for listen and
// events, two for the others) and its arguments.
func command(args []string) (name string, rest []string) {
	switch {
	case len(args) == 0:
		return "", nil
	case args[0] == "listen" || args[0] == "events" || args[0] == "probe":
		return args[0], args[1:]
	case len(args) == 1:
		return args[0], nil
	}
	return args[0] + " " + args[1], args[2:]
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func newFlags(name string, io IO) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Stderr)
	fs.Usage = func() { fmt.Fprint(io.Stderr, usage) }
	return fs
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func verifyCertCmd(ctx context.Context, args []string, io IO) (int, error) {
	fs := newFlags("verify cert", io)
	var o VerifyCertOptions
	var trust, inter, crls multi
	fs.Var(&trust, "trust", "trust anchor file or directory (repeatable)")
	fs.Var(&inter, "intermediate", "intermediate CA certificate file (repeatable)")
	fs.Var(&crls, "crl", "CRL file, complete or delta (repeatable)")
	at := fs.String("at", "", "verification time, RFC 3339 (default: now)")
	if err := fs.Parse(args); err != nil {
		return ExitError, err
	}
	if fs.NArg() != 1 || len(trust) == 0 {
		fs.Usage()
		return ExitError, errors.New("one CERT and at least one --trust are required")
	}
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return ExitError, fmt.Errorf("--at: %w", err)
		}
		o.At = t
	}
	o.Trust, o.Intermediates, o.CRLs = trust, inter, crls
	v, err := VerifyCert(ctx, fs.Arg(0), o)
	if err != nil {
		return ExitError, err
	}
	if err := printJSON(io.Stdout, v); err != nil {
		return ExitError, err
	}
	if !v.Valid {
		return ExitInvalid, nil
	}
	return ExitOK, nil
}

func crlImportCmd(ctx context.Context, args []string, io IO) error {
	fs := newFlags("crl import", io)
	var issuers multi
	fs.Var(&issuers, "issuer", "CA certificate allowed to sign the CRL (repeatable)")
	index := fs.String("index", "", "revocation store directory (the daemon's revocation.index_dir)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 || *index == "" || len(issuers) == 0 {
		fs.Usage()
		return errors.New("--issuer, --index and at least one CRL are required")
	}
	rs, err := ImportCRLs(ctx, fs.Args(), ImportOptions{Issuers: issuers, IndexDir: *index,
		Progress: func(file string, size int64) func(int64) {
			p := &Progress{W: io.Stderr, Terminal: io.Terminal, Total: size}
			return p.Update
		}})
	for _, r := range rs {
		state := "imported"
		if r.Unchanged {
			state = "already current"
		}
		fmt.Fprintf(io.Stdout, "%s: series %s CRL #%s (delta %v): %s, %d entries in the index\n",
			state, r.Series, r.Info.Number, r.Delta, nameString(r.Info.RawIssuer), r.Entries)
	}
	return err
}

func crlInspectCmd(ctx context.Context, args []string, io IO) error {
	fs := newFlags("crl inspect", io)
	var issuers multi
	fs.Var(&issuers, "issuer", "CA certificate to check the signature with (repeatable)")
	index := fs.String("index", "", "show a revocation store's series instead")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *index != "" {
		st, err := InspectIndex(ctx, *index)
		if err != nil {
			return err
		}
		return printJSON(io.Stdout, st)
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("a CRL file or --index is required")
	}
	for _, f := range fs.Args() {
		in, err := InspectCRL(ctx, f, issuers)
		if err != nil {
			return err
		}
		if err := printJSON(io.Stdout, in); err != nil {
			return err
		}
	}
	return nil
}

func crlDiffCmd(ctx context.Context, args []string, io IO) error {
	fs := newFlags("crl diff", io)
	serials := fs.Bool("serials", false, "list the changed serial numbers (+ added, - removed, ~ reason changed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return errors.New("OLD and NEW CRL files are required")
	}
	d, err := DiffCRLs(ctx, fs.Arg(0), fs.Arg(1), *serials)
	if err != nil {
		return err
	}
	return printJSON(io.Stdout, d)
}
