package tap

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"

	"github.com/kazashi/kazashi/drivers/jpki"
	"github.com/kazashi/kazashi/firmware/holder"
)

// The flows follow mynumbercard.md: §2 (JPKI AP), §3 (input support AP),
// §4 (card surface AP) and the face-check table of §6. Each runs in the one
// card session of the tap: field loss ends it with "removed", and the
// next tap starts over (security state does not survive power-off).

// cardCheck: a chip presented a valid, unrevoked user-authentication
// certificate. A copy of the (public) certificate passes too.
func cardCheck(f *flow) { f.authCert(false) }

// faceCheck: the PIN-less genuine-card check (§6 steps 1–7).
func faceCheck(f *flow) {
	// 1–2: the JPKI user-authentication certificate, valid and unrevoked.
	if f.authCert(false) == nil {
		return
	}
	// 3: the card surface AP's CV certificate, issued by the surface CA.
	if !f.selectApp(jpki.AIDSurface, "card-surface-ap") {
		return
	}
	cv := f.cvCert("surface")
	if cv == nil {
		return
	}
	// 4: collation number B, counter first, presented once.
	b := f.present(holder.CollationB, jpki.SurfacePINB)
	if b == nil {
		return
	}
	defer b.Zero()
	// 5: the card-face record, signed by the key the CV certificate certifies.
	raw := f.readTLV(jpki.SurfaceEFFace, "card-face")
	if raw == nil {
		return
	}
	face, err := jpki.ParseCardFace(raw)
	clear(raw)
	if err != nil {
		f.fail(ReasonNotGenuine, "card-face", err.Error())
		return
	}
	if err := face.CheckSignature(cv.PublicKey); err != nil {
		f.fail(ReasonNotGenuine, "card-face", err.Error())
		return
	}
	// 6: the signed birth date and the (unsigned) expiry match B.
	if err := jpki.MatchCollationB(b.Bytes(), face.BirthDate, face.Expiry); err != nil {
		f.fail(ReasonFaceMismatch, "card-face", err.Error())
		return
	}
	b.Zero()
	// 7: liveness: the chip holding the record's card key signs a fresh nonce.
	if !f.challenge(face.CardKey, "liveness") {
		return
	}
	f.ev.CardKeyID = cardKeyID(f.p.PseudonymKey, f.pr.Service, face.CardKeyBytes())
}

// pinAuth: possession of the user-authentication key, after the PIN.
func pinAuth(f *flow) {
	cert := f.authCert(true)
	if cert == nil {
		return
	}
	if !f.authPIN() {
		return
	}
	f.possession(jpki.EFAuthKey, cert.PublicKey, "possession")
}

// authPIN presents the user-authentication PIN unless the flow already
// did (an Android token asks for it before the certificate).
func (f *flow) authPIN() bool {
	if f.ev.Credential == string(holder.AuthPIN) {
		return true
	}
	s := f.present(holder.AuthPIN, jpki.EFAuthPIN)
	if s == nil {
		return false
	}
	s.Zero()
	return true
}

// signFlow: the holder signs the configured document's digest.
func signFlow(f *flow) {
	if f.authCert(true) == nil {
		return
	}
	f.signDocument()
}

// registerFlow: pin-auth and sign in one session, without selecting the
// JPKI AP again in between (that would clear the verified PIN).
func registerFlow(f *flow) {
	cert := f.authCert(true)
	if cert == nil || !f.authPIN() || !f.possession(jpki.EFAuthKey, cert.PublicKey, "possession") {
		return
	}
	f.signDocument()
}

// signDocument: certificate availability, signature password, signature
// certificate (its own anchors), basic 4 in its SAN parsed but never
// published, then the signature over the document digest.
func (f *flow) signDocument() {
	var avail jpki.CertAvailability
	if err := f.card(func(ctx context.Context) (err error) { avail, err = jpki.ReadCertAvailability(ctx, f.s); return }); err != nil {
		f.cardFailed("signature-certificate", err)
		return
	}
	if !avail.Sign {
		f.fail(ReasonNoSignCert, "signature-certificate", "EF 0008 lists no signature certificate")
		return
	}
	s := f.present(holder.SignPassword, jpki.EFSignPIN)
	if s == nil {
		return
	}
	s.Zero()
	var der []byte
	if err := f.card(func(ctx context.Context) (err error) {
		der, err = jpki.ReadCertificate(ctx, f.s, jpki.EFSignCert)
		return
	}); err != nil {
		if errors.Is(err, jpki.ErrAccessDenied) {
			f.fail(ReasonNotGenuine, "signature-certificate", "signature certificate still locked after the password was accepted")
			return
		}
		f.cardFailed("signature-certificate", err)
		return
	}
	v := f.p.Verifier.VerifyJPKISign(f.ctx, der)
	f.noteRevocation(v)
	if v.Reason != ReasonOK {
		f.fail(v.Reason, "signature-certificate", v.Detail)
		return
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		f.fail(ReasonMalformed, "signature-certificate", "does not parse")
		return
	}
	attrs, err := jpki.ParseSignAttributes(cert)
	if err != nil {
		f.fail(ReasonMalformed, "signature-certificate", err.Error())
		return
	}
	if _, _, err := jpki.ParseEraBirthDate(attrs.BirthDate); err != nil {
		f.fail(ReasonMalformed, "signature-certificate", err.Error())
		return
	}
	*attrs = jpki.SignAttributes{}
	digest, err := f.p.Document(f.ctx)
	if err != nil || len(digest) != sha256.Size {
		f.fail(ReasonIO, "document", "no SHA-256 document digest")
		return
	}
	if !f.signed(jpki.EFSignKey, digest, cert.PublicKey, "signature") {
		return
	}
	f.ev.DocumentSHA256 = hex.EncodeToString(digest)
}

// attributesFlow: basic 4 information from the input support AP (§3),
// verified against its integrity record, with a liveness challenge, handed
// to the local terminal only.
func attributesFlow(f *flow) {
	if f.authCert(false) == nil {
		return
	}
	if !f.selectApp(jpki.AIDSupport, "input-support-ap") {
		return
	}
	cv := f.cvCert("support")
	if cv == nil {
		return
	}
	pin := f.present(holder.SupportPIN, jpki.SupportPIN)
	if pin == nil {
		return
	}
	pin.Zero()
	raw := f.readTLV(jpki.SupportEFBasic4, "basic4")
	if raw == nil {
		return
	}
	b4, err := jpki.ParseBasic4(raw)
	clear(raw)
	if err != nil {
		f.fail(ReasonIntegrity, "basic4", err.Error())
		return
	}
	raw = f.readTLV(jpki.SupportEFIntegrity, "integrity")
	if raw == nil {
		return
	}
	integ, err := jpki.ParseSupportIntegrity(raw)
	clear(raw)
	if err != nil {
		f.fail(ReasonIntegrity, "integrity", err.Error())
		return
	}
	if err := integ.CheckSignature(cv.PublicKey); err != nil {
		f.fail(ReasonIntegrity, "integrity", err.Error())
		return
	}
	if err := integ.CheckBasic4(b4); err != nil {
		f.fail(ReasonIntegrity, "integrity", err.Error())
		return
	}
	a := holder.Attributes{Profile: f.pr.Name, Name: b4.Name, Address: b4.Address, BirthDate: b4.BirthDate, Sex: b4.Sex}
	if f.pr.IndividualNumberPermitted {
		var file []byte
		if err := f.card(func(ctx context.Context) (err error) {
			file, err = jpki.ReadWholeFile(ctx, f.s, jpki.SupportEFNumber, 64)
			return
		}); err != nil {
			f.cardFailed("individual-number", err)
			return
		}
		err := integ.CheckNumberFile(file)
		if err == nil {
			a.IndividualNumber, err = jpki.ParseIndividualNumber(file)
		}
		clear(file)
		if err != nil {
			f.fail(ReasonIntegrity, "individual-number", err.Error())
			return
		}
	}
	raw = f.readTLV(jpki.SupportEFChallengeKey, "liveness")
	if raw == nil {
		return
	}
	key, err := jpki.ParseChallengeKey(raw, cv.PublicKey)
	if err != nil {
		f.fail(ReasonNotGenuine, "liveness", err.Error())
		return
	}
	if !f.challenge(key, "liveness") {
		return
	}
	if err := f.p.Local.Deliver(f.ctx, a); err != nil {
		f.fail(ReasonUndelivered, "delivery", err.Error())
	}
}
