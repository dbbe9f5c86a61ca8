package tap

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"hash"
)

// Pseudonymous identifiers, like MyKey Platform's per-service PPIDs: keyed
// with the deployment's key AND the service name, so two services of one
// deployment cannot join their records, and irreversible to the serial
// number or the card key.

// CardID is HMAC-SHA256(key, "kazashi card-id v2" ‖ service ‖ issuer ‖
// serial), each field length-prefixed, truncated to 128 bits. The caller
// must only pass a certificate whose signature chained to a trust anchor:
// a self-made certificate can copy any issuer and serial.
func CardID(key []byte, service string, cert *x509.Certificate) string {
	return cardID(key, service, cert)
}

func cardID(key []byte, service string, cert *x509.Certificate) string {
	m := hmac.New(sha256.New, key)
	field(m, []byte("kazashi card-id v2"))
	field(m, []byte(service))
	field(m, cert.RawIssuer)
	field(m, cert.SerialNumber.Bytes())
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// cardKeyID is keyed over the card's own public key (the signed card-face
// record's DF24): it survives the renewal of the JPKI certificates.
func cardKeyID(key []byte, service string, cardKey []byte) string {
	m := hmac.New(sha256.New, key)
	field(m, []byte("kazashi card-key-id v1"))
	field(m, []byte(service))
	field(m, cardKey)
	return hex.EncodeToString(m.Sum(nil)[:16])
}

func field(h hash.Hash, b []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	h.Write(n[:])
	h.Write(b)
}
