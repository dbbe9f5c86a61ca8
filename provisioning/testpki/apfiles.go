package testpki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/png"
)

// Tags of the card surface and input support AP records.
const (
	tagFaceTemplate uint16 = 0xFF20 // both APs' EF 0002
	tagOffsets      uint16 = 0xDF21
	tagNumber       uint16 = 0xFF10 // input support EF 0001
	tagInfo         uint16 = 0xFF30 // surface EF 0003, input support EF 0003
	tagChallengeKey uint16 = 0xFF50 // input support EF 0007
)

// faceDigestInfoPrefix heads T, the value DF28 signs: a SHA-256
// AlgorithmIdentifier but a 96-byte OCTET STRING holding three digests
// (doc §4.2).
var faceDigestInfoPrefix = []byte{0x30, 0x71, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x60}

// withOffsets builds tag { DF21 <u16 BE offset of each element>, elements… }.
// Each offset is absolute from the file's first byte (the template tag's
// first byte, offset 0) and points at the first tag byte (DF) of its
// element. This matches the published input support vector: FF 20 65,
// DF 21 08 00 0E …, DF22 at offset 0x0E = 3 (template header) + 11 (DF21 TLV).
func withOffsets(tag uint16, elements [][]byte) []byte {
	tableLen := 3 + 2*len(elements) // DF 21 <len> <offsets>; always < 0x80
	bodyLen := tableLen
	for _, e := range elements {
		bodyLen += len(e)
	}
	header := 3 // tag ‖ short length
	if bodyLen >= 0x80 {
		header = 5 // tag ‖ 82 ‖ u16
	}
	offsets := make([]byte, 0, 2*len(elements))
	pos := header + tableLen
	for _, e := range elements {
		offsets = binary.BigEndian.AppendUint16(offsets, uint16(pos))
		pos += len(e)
	}
	body := tlv(tagOffsets, offsets)
	for _, e := range elements {
		body = append(body, e...)
	}
	return tlv(tag, body)
}

// surfaceFiles builds a card's card surface AP (券面事項確認AP).
func (h *cvHierarchy) surfaceFiles(p Person, cardKey *rsa.PrivateKey) (*SurfaceFiles, error) {
	key, err := cardKeyValue(&cardKey.PublicKey)
	if err != nil {
		return nil, err
	}
	nameImage, err := bitmap(96, 16, "name:"+p.Name)
	if err != nil {
		return nil, err
	}
	addressImage, err := bitmap(192, 16, "address:"+p.Address)
	if err != nil {
		return nil, err
	}
	codeImage, err := bitmap(24, 12, "code:"+p.SecurityCode) // 24×12 as seen on a card
	if err != nil {
		return nil, err
	}
	seg1 := bytes.Join([][]byte{tlv(0xDF22, []byte(p.BirthDate)), tlv(0xDF23, []byte(p.Sex)), tlv(0xDF24, key)}, nil)
	seg2 := append(tlv(0xDF25, nameImage), tlv(0xDF26, addressImage)...)
	seg3 := tlv(0xDF27, photo(p))
	t := bytes.Clone(faceDigestInfoPrefix)
	for _, seg := range [][]byte{seg1, seg2, seg3} {
		d := sha256.Sum256(seg)
		t = append(t, d[:]...)
	}
	// crypto.Hash(0): T is signed as given (EMSA-PKCS1-v1_5 padding only).
	sig, err := rsa.SignPKCS1v15(rand.Reader, h.surfaceKey, crypto.Hash(0), t)
	if err != nil {
		return nil, fmt.Errorf("testpki: DF28: %w", err)
	}
	face := withOffsets(tagFaceTemplate, [][]byte{
		tlv(0xDF22, []byte(p.BirthDate)),
		tlv(0xDF23, []byte(p.Sex)),
		tlv(0xDF24, key),
		tlv(0xDF25, nameImage),
		tlv(0xDF26, addressImage),
		seg3,
		tlv(0xDF28, sig),
		tlv(0xDF29, []byte(p.Expiry)), // not signed
		tlv(0xDF2A, codeImage),        // not signed
	})

	opaque := make([]byte, 256)
	if _, err := rand.Read(opaque); err != nil {
		return nil, err
	}
	info := tlv(tagInfo, bytes.Join([][]byte{
		tlv(0xDF31, []byte{0x06, 0x03, 0x0E, 0x01}), // as on real cards
		tlv(0xDF32, h.surfaceInfoID[:]),
		tlv(0xDF33, []byte{0x01}),
		tlv(0xDF34, []byte(MunicipalityCode)),
		tlv(0xDF35, append(h.infoOpaqueID[:], opaque...)),
	}, nil))

	return &SurfaceFiles{CVCert: bytes.Clone(h.surfaceCert), Face: face, Info: info, CardKey: cardKey}, nil
}

// supportFiles builds a card's input support AP (券面事項入力補助AP).
func (h *cvHierarchy) supportFiles(p Person, challengeKey *rsa.PrivateKey) (*SupportFiles, error) {
	// EF 0001: the 15-byte TLV and 2 bytes of FF filler, 17 bytes.
	number := append(tlv(tagNumber, []byte(p.IndividualNumber)), 0xFF, 0xFF)
	basic4 := withOffsets(tagFaceTemplate, [][]byte{
		tlv(0xDF22, []byte(p.Name)),
		tlv(0xDF23, []byte(p.Address)),
		tlv(0xDF24, []byte(p.BirthDate)),
		tlv(0xDF25, []byte(p.Sex)),
	})
	// DF32 covers the FF20 value from DF22 to its end: skip the template
	// header and the DF21 TLV (11 bytes).
	signedBasic4 := basic4[len(basic4)-templateValueLen(basic4)+11:]
	numberDigest := sha256.Sum256(number)
	basic4Digest := sha256.Sum256(signedBasic4)
	signed := append(tlv(0xDF31, numberDigest[:]), tlv(0xDF32, basic4Digest[:])...)
	sig, err := signSHA256(h.supportKey, signed)
	if err != nil {
		return nil, fmt.Errorf("testpki: integrity record: %w", err)
	}
	integrity := tlv(tagInfo, append(signed, tlv(0xDF33, sig)...))

	key, err := cardKeyValue(&challengeKey.PublicKey)
	if err != nil {
		return nil, err
	}
	df51 := tlv(0xDF51, key)
	keySig, err := signSHA256(h.supportKey, df51)
	if err != nil {
		return nil, fmt.Errorf("testpki: EF 0007: %w", err)
	}
	return &SupportFiles{
		CVCert:             bytes.Clone(h.supportCert),
		Number:             number,
		Basic4:             basic4,
		Integrity:          integrity,
		ChallengeKeyRecord: tlv(tagChallengeKey, append(df51, tlv(0xDF52, keySig)...)),
		ChallengeKey:       challengeKey,
	}, nil
}

// templateValueLen returns the length of a TLV's value as encoded by tlv.
func templateValueLen(b []byte) int {
	if b[2] == 0x82 {
		return int(b[3])<<8 | int(b[4])
	}
	return int(b[2])
}

func signSHA256(key *rsa.PrivateKey, msg []byte) ([]byte, error) {
	d := sha256.Sum256(msg)
	return rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
}

// bitmap renders a deterministic 1-bit PNG (2-colour palette, so
// image/png writes bit depth 1) whose pixels are a hash stream of seed: a
// stand-in for the card's rendered text, distinct per person.
func bitmap(w, h int, seed string) ([]byte, error) {
	img := image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{color.White, color.Black})
	stream := hashStream(seed, (w*h+7)/8)
	for i := range w * h {
		if stream[i/8]>>(7-i%8)&1 == 1 {
			img.SetColorIndex(i%w, i/w, 1)
		}
	}
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("testpki: image: %w", err)
	}
	return buf.Bytes(), nil
}

// photo stands for DF27. A real card holds a greyscale JPEG 2000 (JP2)
// photograph; this is only the JP2 signature box and a file-type box
// followed by a free box of per-person bytes, not a decodable image.
func photo(p Person) []byte {
	b := []byte{
		0x00, 0x00, 0x00, 0x0C, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A, // JP2 signature box
		0x00, 0x00, 0x00, 0x14, 'f', 't', 'y', 'p', 'j', 'p', '2', ' ', 0, 0, 0, 0, 'j', 'p', '2', ' ', // ftyp
		0x00, 0x00, 0x00, 0x48, 'f', 'r', 'e', 'e', // free box: 8 + 64 bytes
	}
	return append(b, hashStream("photo:"+p.Name+p.BirthDate, 64)...)
}

// hashStream returns n bytes of SHA-256(seed ‖ counter) blocks.
func hashStream(seed string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	for i := uint32(0); len(out) < n; i++ {
		d := sha256.Sum256(binary.BigEndian.AppendUint32([]byte(seed), i))
		out = append(out, d[:]...)
	}
	return out[:n]
}
