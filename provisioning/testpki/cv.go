package testpki

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Key IDs of the generated CV hierarchy (doc §4.4). The CA IDs are in the
// test range (6…) but never J-LIS's own test CAs 6000023/6000033, whose
// private halves nobody here has. The municipality IDs follow the real test
// card's pattern (1322121 under 6000023): municipality code 13999 (Tokyo,
// no such municipality) ‖ 21 surface / 31 input support.
const (
	CVSurfaceCAID           = "6990023/001" // issuer of every card's surface AP EF 0004
	CVSupportCAID           = "6990033/001" // issuer of every card's input support AP EF 0004
	CVSurfaceMunicipalityID = "1399921/000" // subject of the surface AP EF 0004
	CVSupportMunicipalityID = "1399931/000" // subject of the input support AP EF 0004
	MunicipalityCode        = "13999"       // surface EF 0003 DF34
)

// cvKeyID encodes "DDDDDDD/NNN" as the 16-byte key ID 7 ASCII digits ‖
// 08 05 ‖ 3 ASCII digits ‖ 00 00 00 ‖ 00.
func cvKeyID(s string) ([16]byte, error) {
	var id [16]byte
	if len(s) != 11 || s[7] != '/' || !digits(s[:7]) || !digits(s[8:]) {
		return id, fmt.Errorf("testpki: key ID %q is not DDDDDDD/NNN", s)
	}
	copy(id[0:7], s[:7])
	id[7], id[8] = 0x08, 0x05
	copy(id[9:12], s[8:])
	return id, nil // bytes 12..15 stay 00
}

func mustKeyID(s string) [16]byte {
	id, err := cvKeyID(s)
	if err != nil {
		panic(err)
	}
	return id
}

// cardKeyValue encodes an RSA-2048 public key the way the card APs do
// (DF24, DF12, DF42, DF51 and the CV certificate body):
// 90 03 <e, 3 bytes> 91 82 01 00 <256-byte modulus>.
func cardKeyValue(k *rsa.PublicKey) ([]byte, error) {
	if k.N.BitLen() != rsaBits || k.E != 65537 {
		return nil, errors.New("testpki: card key is not RSA-2048 with e = 65537")
	}
	out := []byte{0x90, 0x03, 0x01, 0x00, 0x01, 0x91, 0x82, 0x01, 0x00}
	return append(out, k.N.FillBytes(make([]byte, 256))...), nil
}

// tlv encodes a BER-TLV with a two-byte tag (all tags of these files are
// two bytes: 7F21, 5F4E, FF20, DF2x …). Lengths below 0x80 are short; longer
// ones use the 82 form, as the cards write them (e.g. DF24 82 01 09, never
// 81 xx).
func tlv(tag uint16, value []byte) []byte {
	out := []byte{byte(tag >> 8), byte(tag)}
	if n := len(value); n < 0x80 {
		out = append(out, byte(n))
	} else {
		out = append(out, 0x82, byte(n>>8), byte(n))
	}
	return append(out, value...)
}

// cvCertificate returns the EF 0004 file: exactly the 568-byte 7F21 TLV,
// without filler (the real file's size beyond the TLV is not documented, so
// none is added):
//
//	7F 21 82 02 33
//	  5F 4E 82 01 29  issuer ID (16) ‖ subject ID (16) ‖ 90 03 01 00 01 91 82 01 00 <n, 256>
//	  5F 37 82 01 00  RSASSA-PKCS1-v1_5 / SHA-256 over the 297-byte 5F4E value, by the issuer's key
func cvCertificate(issuerID, subjectID [16]byte, subject *rsa.PublicKey, caKey *rsa.PrivateKey) ([]byte, error) {
	key, err := cardKeyValue(subject)
	if err != nil {
		return nil, err
	}
	body := append(append(issuerID[:], subjectID[:]...), key...)
	digest := sha256.Sum256(body)
	sig, err := rsa.SignPKCS1v15(rand.Reader, caKey, crypto.SHA256, digest[:])
	if err != nil {
		return nil, fmt.Errorf("testpki: CV certificate: %w", err)
	}
	return tlv(0x7F21, append(tlv(0x5F4E, body), tlv(0x5F37, sig)...)), nil
}

// cvHierarchy is the generated CV CA pair and the one municipality whose
// keys sign every card's AP records.
type cvHierarchy struct {
	anchors                     []CVAnchor
	surfaceCert, supportCert    []byte // EF 0004 of each AP
	surfaceKey, supportKey      *rsa.PrivateKey
	surfaceInfoID, infoOpaqueID [16]byte
}

func newCVHierarchy(surfaceCA, supportCA, surfaceMuni, supportMuni *rsa.PrivateKey) (*cvHierarchy, error) {
	h := &cvHierarchy{
		anchors: []CVAnchor{
			{Purpose: PurposeSurface, ID: mustKeyID(CVSurfaceCAID), IDString: CVSurfaceCAID, Key: &surfaceCA.PublicKey},
			{Purpose: PurposeSupport, ID: mustKeyID(CVSupportCAID), IDString: CVSupportCAID, Key: &supportCA.PublicKey},
		},
		surfaceKey: surfaceMuni,
		supportKey: supportMuni,
		// Surface EF 0003 DF32 and DF35's key IDs: on real cards x000024/001
		// and 5900025/001, neither the EF 0004 subject; mirrored in the
		// generated test range.
		surfaceInfoID: mustKeyID("6990024/001"),
		infoOpaqueID:  mustKeyID("6990025/001"),
	}
	var err error
	if h.surfaceCert, err = cvCertificate(h.anchors[0].ID, mustKeyID(CVSurfaceMunicipalityID), &surfaceMuni.PublicKey, surfaceCA); err != nil {
		return nil, err
	}
	if h.supportCert, err = cvCertificate(h.anchors[1].ID, mustKeyID(CVSupportMunicipalityID), &supportMuni.PublicKey, supportCA); err != nil {
		return nil, err
	}
	return h, nil
}
