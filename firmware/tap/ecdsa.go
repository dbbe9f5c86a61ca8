package tap

import (
	"crypto/ecdsa"
	"math/big"
)

// ecdsaRaw verifies a raw r‖s ECDSA signature (the form a card may return
// instead of ASN.1).
func ecdsaRaw(k *ecdsa.PublicKey, digest, r, s []byte) bool {
	return ecdsa.Verify(k, digest, new(big.Int).SetBytes(r), new(big.Int).SetBytes(s))
}
