package tap

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kazashi/kazashi/drivers/jpki"
	"github.com/kazashi/kazashi/firmware/holder"
)

// flow is one tap's run through a profile: the card session, the card-time
// budget and the event being filled in.
type flow struct {
	p   *Pipeline
	pr  Profile
	ctx context.Context // the tap's context, without the card deadline
	s   Session
	ev  *Event

	left   time.Duration // card I/O budget still available
	input  time.Duration // time the holder spent typing
	detail string        // for the debug log; never personal data
	holder jpki.Holder
}

// fail records the first failure; later calls are ignored.
func (f *flow) fail(reason, check, detail string) {
	if f.ev.Reason != "" {
		return
	}
	f.ev.Reason, f.ev.Check, f.detail = reason, check, detail
}

// card runs card I/O within the remaining card budget: the time a holder
// takes to type is never charged to it.
func (f *flow) card(fn func(ctx context.Context) error) error {
	if f.left <= 0 {
		return fmt.Errorf("tap: card read timeout: %w", context.DeadlineExceeded)
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.left)
	defer cancel()
	start := time.Now()
	err := fn(ctx)
	f.left -= time.Since(start)
	return err
}

// cardFailed maps a card I/O error of step check: a card pulled away is
// "removed", anything else "io".
func (f *flow) cardFailed(check string, err error) {
	f.fail(ioReason(err), check, err.Error())
}

// nonce returns a fresh 32-byte kiosk nonce: a recorded answer of an
// earlier tap cannot be replayed (mynumbercard.md §4.5).
func nonce() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("tap: no randomness: %v", err)) // crypto/rand does not fail on Linux
	}
	return b
}

// authCert is the card-check part of every profile: JPKI AP, token label,
// user-authentication certificate (EF 000A), offline verification. It
// sets card_id only for a certificate that chained to an anchor, and
// returns the parsed certificate when the verdict is ok.
func (f *flow) authCert(allowPINFirst bool) *x509.Certificate {
	var tok jpki.Token
	if err := f.card(func(ctx context.Context) (err error) { tok, err = jpki.ReadToken(ctx, f.s); return }); err != nil {
		if errors.Is(err, jpki.ErrNotJPKI) {
			f.fail(ReasonUnsupported, "jpki-ap", err.Error())
			return nil
		}
		f.cardFailed("jpki-ap", err)
		return nil
	}
	f.holder = tok.Holder
	f.ev.CardKind = string(tok.Holder)
	if tok.Holder == jpki.HolderUnknown {
		f.fail(ReasonUnsupported, "jpki-ap", "unknown token label")
		return nil
	}
	var der []byte
	read := func() error {
		return f.card(func(ctx context.Context) (err error) {
			der, err = jpki.ReadCertificate(ctx, f.s, jpki.EFAuthCert)
			return
		})
	}
	err := read()
	if errors.Is(err, jpki.ErrAccessDenied) && allowPINFirst {
		// Android phones protect the certificate with the PIN (mynumbercard.md §1).
		s := f.present(holder.AuthPIN, jpki.EFAuthPIN)
		if s == nil {
			return nil
		}
		s.Zero()
		err = read()
	}
	if err != nil {
		if errors.Is(err, jpki.ErrAccessDenied) {
			f.fail(ReasonPINRequired, "auth-certificate", err.Error())
			return nil
		}
		f.cardFailed("auth-certificate", err)
		return nil
	}
	v := f.p.Verifier.VerifyJPKIAuth(f.ctx, der)
	f.noteRevocation(v)
	var cert *x509.Certificate
	if v.Chained {
		if cert, err = x509.ParseCertificate(der); err == nil {
			f.ev.CardID = cardID(f.p.PseudonymKey, f.pr.Service, cert)
		}
	}
	if v.Reason != ReasonOK {
		f.fail(v.Reason, "auth-certificate", v.Detail)
		return nil
	}
	if cert == nil {
		f.fail(ReasonMalformed, "auth-certificate", "verifier accepted a certificate that does not parse or did not chain")
		return nil
	}
	return cert
}

// noteRevocation records the age of the revocation data that judged a
// certificate; with two certificates (register) the older data counts.
func (f *flow) noteRevocation(v Verdict) {
	if !v.RevocationKnown {
		return
	}
	if v.RevocationStale {
		f.ev.RevocationStale = true
	}
	if a := f.ev.RevocationAgeS; a == nil || *a < int64(v.RevocationAge/time.Second) {
		f.ev.RevocationAgeS = seconds(v.RevocationAge)
	}
}

// present reads the retry counter of the credential in EF fid of the
// selected application, refuses below the floor, asks the holder once and
// presents the answer once. It returns the secret (the caller zeroes it)
// or nil after recording the failure. Nothing is ever presented twice:
// a wrong answer ends the tap.
func (f *flow) present(kind holder.Kind, fid uint16) *holder.Secret {
	f.ev.Credential = string(kind)
	var tries int
	err := f.card(func(ctx context.Context) (err error) { tries, err = jpki.RetryCounter(ctx, f.s, fid); return })
	switch {
	case errors.Is(err, jpki.ErrBlocked):
		zero := 0
		f.ev.TriesLeft = &zero
		f.fail(ReasonBlocked, "secret", "retry counter: blocked")
		return nil
	case err != nil:
		f.cardFailed("secret", err)
		return nil
	case tries < 0:
		// 9000 to the retry query: the card claims the credential is
		// already verified in a session that just started. It does not say
		// how many tries are left, so nothing is risked.
		f.fail(ReasonIO, "secret", "retry query answered 9000 in a fresh session; tries left unknown")
		return nil
	}
	f.ev.TriesLeft = &tries
	if tries < f.pr.TriesFloor {
		f.fail(ReasonTriesFloor, "secret", fmt.Sprintf("%d tries left, floor %d", tries, f.pr.TriesFloor))
		return nil
	}
	f.p.show(Screen{State: StateInput, Credential: kind, TriesLeft: tries, Message: InputMessage(kind, tries)})
	start := time.Now()
	secret, gone, err := f.ask(holder.Request{Kind: kind, TriesLeft: tries, Profile: f.pr.Name})
	f.input += time.Since(start)
	f.p.show(Screen{State: StateReading, Message: MessageReading})
	switch {
	case gone:
		secret.Zero()
		f.fail(ReasonRemoved, "secret", "card left the field while the holder was asked; nothing presented")
		return nil
	case errors.Is(err, holder.ErrCancelled):
		f.fail(ReasonCancelled, "secret", "holder cancelled")
		return nil
	case errors.Is(err, holder.ErrTimeout):
		f.fail(ReasonInputTimeout, "secret", "no input in time")
		return nil
	case err != nil:
		f.fail(ReasonIO, "secret", "holder input: "+err.Error())
		return nil
	}
	if err := holder.CheckFormat(kind, secret.Bytes()); err != nil {
		secret.Zero()
		f.fail(ReasonIO, "secret", err.Error()) // the endpoint checks formats; never presented
		return nil
	}
	err = f.card(func(ctx context.Context) error { return jpki.VerifySecret(ctx, f.s, fid, secret.Bytes()) })
	var wrong *jpki.WrongSecretError
	switch {
	case err == nil:
		return secret
	case errors.As(err, &wrong):
		secret.Zero()
		n := wrong.TriesLeft
		f.ev.TriesLeft = &n
		f.fail(ReasonWrongSecret, "secret", fmt.Sprintf("refused, %d tries left", n))
	case errors.Is(err, jpki.ErrBlocked):
		secret.Zero()
		zero := 0
		f.ev.TriesLeft = &zero
		f.fail(ReasonBlocked, "secret", "refused, now blocked")
	default:
		secret.Zero()
		// A VERIFY whose answer was lost may have cost a try: the next tap
		// reads the counter again, nothing is resent (mynumbercard.md §2.4).
		f.cardFailed("secret", err)
	}
	return nil
}

// ask asks the holder while watching the card: a holder who walks away
// with the card ends the question at once (gone) instead of leaving the
// kiosk waiting for the input timeout. The watch has stopped, and the
// reader is free for the next APDU, when ask returns.
func (f *flow) ask(r holder.Request) (*holder.Secret, bool, error) {
	askCtx, cancelAsk := context.WithCancel(f.ctx)
	defer cancelAsk()
	watchCtx, stopWatch := context.WithCancel(f.ctx)
	var gone atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := f.s.WaitRemoved(watchCtx); err == nil && watchCtx.Err() == nil {
			gone.Store(true)
			cancelAsk()
		}
	})
	secret, err := f.p.Input.Ask(askCtx, r)
	stopWatch()
	wg.Wait()
	return secret, gone.Load(), err
}

// possession has the card sign a fresh nonce with the JPKI key in EF
// keyFID (80 2A 00 80, SHA-256 DigestInfo) and checks the signature with
// pub, the key of the certificate verified before.
func (f *flow) possession(keyFID uint16, pub crypto.PublicKey, check string) bool {
	digest := sha256.Sum256(nonce())
	return f.signed(keyFID, digest[:], pub, check)
}

// signed has the card sign digest (SHA-256) with the key in EF keyFID and
// verifies the signature with pub.
func (f *flow) signed(keyFID uint16, digest []byte, pub crypto.PublicKey, check string) bool {
	di, err := jpki.DigestInfo(crypto.SHA256, digest)
	if err != nil {
		f.fail(ReasonIO, check, err.Error())
		return false
	}
	var sig []byte
	if err := f.card(func(ctx context.Context) (err error) { sig, err = jpki.ComputeSignature(ctx, f.s, keyFID, di); return }); err != nil {
		f.signFailed(check, err)
		return false
	}
	if err := verifySignature(pub, digest, sig); err != nil {
		f.fail(ReasonNotGenuine, check, "the card's signature does not verify with the certified key: "+err.Error())
		return false
	}
	return true
}

// signFailed maps an error of a signing command: a card that refuses to
// sign after accepting its secret is not behaving like a genuine card.
func (f *flow) signFailed(check string, err error) {
	if errors.Is(err, jpki.ErrAccessDenied) || errors.Is(err, jpki.ErrMalformed) {
		f.fail(ReasonNotGenuine, check, err.Error())
		return
	}
	f.cardFailed(check, err)
}

// challenge has the selected card application sign a fresh nonce with its
// default key (80 2A 00 00, mynumbercard.md §4.5) and checks it with pub.
func (f *flow) challenge(pub *rsa.PublicKey, check string) bool {
	digest := sha256.Sum256(nonce())
	di, err := jpki.DigestInfo(crypto.SHA256, digest[:])
	if err != nil {
		f.fail(ReasonIO, check, err.Error())
		return false
	}
	var sig []byte
	if err := f.card(func(ctx context.Context) (err error) { sig, err = jpki.ChallengeSignature(ctx, f.s, di); return }); err != nil {
		f.signFailed(check, err)
		return false
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		f.fail(ReasonNotGenuine, check, "challenge signature does not verify with the signed card key")
		return false
	}
	return true
}

// verifySignature checks a SHA-256 signature by an RSA (PKCS#1 v1.5) or,
// for the next-generation card, ECDSA key (ASN.1 or raw r‖s).
func verifySignature(pub crypto.PublicKey, digest, sig []byte) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig)
	case *ecdsa.PublicKey:
		if ecdsa.VerifyASN1(k, digest, sig) {
			return nil
		}
		if n := (k.Curve.Params().BitSize + 7) / 8; len(sig) == 2*n {
			if ecdsaRaw(k, digest, sig[:n], sig[n:]) {
				return nil
			}
		}
		return errors.New("ecdsa signature does not verify")
	}
	return fmt.Errorf("key type %T not supported", pub)
}

// cvCert reads and checks the CV certificate (EF 0004) of the selected
// card application against the kiosk's anchors for purpose.
func (f *flow) cvCert(purpose string) *jpki.CVCertificate {
	fid := jpki.SurfaceEFCVCert
	if purpose == "support" {
		fid = jpki.SupportEFCVCert
	}
	var raw []byte
	if err := f.card(func(ctx context.Context) (err error) { raw, err = jpki.ReadTLVFile(ctx, f.s, fid); return }); err != nil {
		if errors.Is(err, jpki.ErrMalformed) {
			f.fail(ReasonNotGenuine, "cv-certificate", err.Error())
			return nil
		}
		f.cardFailed("cv-certificate", err)
		return nil
	}
	cv, err := jpki.ParseCVCertificate(raw)
	if err != nil {
		f.fail(ReasonNotGenuine, "cv-certificate", err.Error())
		return nil
	}
	ca, ok := f.p.CV.CVKey(purpose, cv.Issuer)
	if !ok {
		// An unknown issuer means "not checked", not "bad signature"
		// (mynumbercard.md §5).
		f.fail(ReasonCVAnchorUnknown, "cv-certificate", "issuer "+cv.Issuer.String()+" is no "+purpose+" anchor of this kiosk")
		return nil
	}
	if err := cv.CheckSignatureFrom(ca); err != nil {
		f.fail(ReasonNotGenuine, "cv-certificate", err.Error())
		return nil
	}
	return cv
}

// selectApp selects a card application the genuine card has. A My Number
// Card without it is not genuine; a phone token has only the JPKI AP.
func (f *flow) selectApp(aid []byte, check string) bool {
	err := f.card(func(ctx context.Context) error { return jpki.SelectApplication(ctx, f.s, aid) })
	switch {
	case err == nil:
		return true
	case errors.Is(err, jpki.ErrNoApplication) && f.holder == jpki.HolderCard:
		f.fail(ReasonNotGenuine, check, "a card that calls itself a My Number Card lacks this application")
	case errors.Is(err, jpki.ErrNoApplication):
		f.fail(ReasonUnsupported, check, "this holder has no such application")
	default:
		f.cardFailed(check, err)
	}
	return false
}

// readTLV reads a TLV file of the selected application.
func (f *flow) readTLV(fid uint16, check string) []byte {
	var b []byte
	if err := f.card(func(ctx context.Context) (err error) { b, err = jpki.ReadTLVFile(ctx, f.s, fid); return }); err != nil {
		if errors.Is(err, jpki.ErrMalformed) {
			f.fail(ReasonIntegrity, check, err.Error())
			return nil
		}
		f.cardFailed(check, err)
		return nil
	}
	return b
}
