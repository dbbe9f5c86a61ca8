package jpki

import (
	"context"
	"errors"
	"fmt"

	"github.com/kazashi/kazashi/drivers/iso7816"
)

// AIDs of the two 券面 applications (doc mynumbercard.md §1; myna, jpki-rs
// ap/surface.rs and ap/support.rs, AokiApp constants.ts).
var (
	// AIDSurface is the card surface AP (券面事項確認AP).
	AIDSurface = []byte{0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x02}
	// AIDSupport is the input support AP (券面事項入力補助AP).
	AIDSupport = []byte{0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x08}
)

// Files and key references of the card surface AP (doc §4.1, §4.2, §4.4;
// soltia48 ap/surface.rs).
const (
	SurfaceEFFace   uint16 = 0x0002 // card-face record (needs collation number B)
	SurfaceEFInfo   uint16 = 0x0003 // free, unsigned
	SurfaceEFCVCert uint16 = 0x0004 // CV certificate, free
	SurfacePINB     uint16 = 0x0012 // collation number B, 14 digits
)

// Files and key references of the input support AP (doc §3.1, §3.2;
// soltia48 ap/text.rs).
const (
	SupportEFNumber       uint16 = 0x0001 // individual number (PIN)
	SupportEFBasic4       uint16 = 0x0002 // basic 4 information (PIN)
	SupportEFIntegrity    uint16 = 0x0003 // integrity record (PIN)
	SupportEFCVCert       uint16 = 0x0004 // CV certificate, free
	SupportEFChallengeKey uint16 = 0x0007 // FF50 {DF51 key, DF52 sig} (PIN or collation number)
	SupportPIN            uint16 = 0x0011 // 4 digits
	SupportPINB           uint16 = 0x0015 // collation number B
)

// ErrNoApplication: SELECT by name answered 6A82 or 6A86, the card has no
// such application (a phone token has only the JPKI AP, a clone may have
// none of the 券面 APs).
var ErrNoApplication = errors.New("jpki: application not on this card")

// noAppError reports a missing application as sentinel (ErrNotJPKI or
// ErrNoApplication) while matching ErrNoApplication too.
type noAppError struct {
	sentinel error
	sw       uint16
}

func (e *noAppError) Error() string { return fmt.Sprintf("%v (SW %04X)", e.sentinel, e.sw) }

func (e *noAppError) Is(target error) bool {
	return target == e.sentinel || target == ErrNoApplication
}

// SelectApplication selects an application by its full AID (SELECT by name,
// 00 A4 04 0C, no FCI; doc §1). A card without it gives an error wrapping
// ErrNoApplication. Selecting an AP clears every verified secret (doc §2.4).
func SelectApplication(ctx context.Context, card iso7816.Card, aid []byte) error {
	return selectByName(ctx, card, aid, ErrNoApplication)
}

func selectByName(ctx context.Context, card iso7816.Card, aid []byte, missing error) error {
	if len(aid) < 5 || len(aid) > 16 {
		return fmt.Errorf("jpki: select application: AID of %d bytes", len(aid))
	}
	_, err := iso7816.Transceive(ctx, card, iso7816.Command{INS: 0xA4, P1: 0x04, P2: 0x0C, Data: aid})
	var se *iso7816.StatusError
	if errors.As(err, &se) && (se.SW == iso7816.SWFileNotFound || se.SW == iso7816.SWWrongP1P2) {
		return &noAppError{sentinel: missing, sw: se.SW}
	}
	if err != nil {
		return fmt.Errorf("jpki: select application: %w", err)
	}
	return nil
}
