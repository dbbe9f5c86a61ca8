package crl

import (
	"context"
	"crypto/x509"
	"math/big"
	"time"
)

// Source is a store of checked CRLs that a verifier consults
// (firmware/revocation implements it). Each Verify takes one Snapshot, so
// a CRL swapped in meanwhile never mixes with the one it replaces.
type Source interface {
	Snapshot() Snapshot
}

// Snapshot is a consistent view of a Source. Release it when done; the
// view's indexes stay mapped until then.
type Snapshot interface {
	// ByIssuer returns the usable CRLs whose issuer name is the DER Name
	// issuerName: complete CRLs, each with any delta CRLs already merged.
	ByIssuer(issuerName []byte) []Usable
	Release()
}

// Usable is one checked CRL: its signature verified under Signer when it
// was imported, its extensions understood.
type Usable interface {
	// Info describes the CRL. For a complete CRL with deltas merged,
	// Number, ThisUpdate and NextUpdate are the newest delta's and
	// BaseNumber is nil.
	Info() *Info
	// Signer is the certificate whose key verified the CRL's signature.
	// A verifier still has to validate it (RFC 5280 §6.3.3 (f)).
	Signer() *x509.Certificate
	// Lookup reports whether serial, issued by the DER Name certIssuer, is
	// listed. Exact: no false answer in either direction.
	Lookup(ctx context.Context, certIssuer []byte, serial *big.Int) (Revocation, bool, error)
}

// Revocation is one listed certificate.
type Revocation struct {
	Reason    int // CRLReason (RFC 5280 §5.3.1) or ReasonAbsent
	RevokedAt time.Time
}
